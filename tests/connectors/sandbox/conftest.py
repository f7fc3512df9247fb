from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from simple_salesforce import Salesforce

from connectors.sandbox.generator import generate_org
from connectors.sandbox.salesforce_metadata import DEFAULT_METADATA_DIR, ObjectMetadata, load_metadata
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg

# More than 2,000 tasks so that queries page.
_DATA = generate_org(anchor=datetime(2026, 9, 30, 17, 0, tzinfo=UTC), accounts=40, opportunities=60, activities=3000)


@pytest.fixture
def org() -> SandboxOrg:
    # Rows are never mutated in place (copy-on-write), so every org can share the generated dicts.
    return SandboxOrg({sobject: list(rows) for sobject, rows in _DATA.items()})


@pytest.fixture
def server(org: SandboxOrg) -> Iterator[SandboxServer]:
    with SandboxServer(org) as running:
        yield running


@pytest.fixture
def http(server: SandboxServer) -> Iterator[requests.Session]:
    session = requests.Session()
    session.verify = server.ca_path
    session.trust_env = False  # REQUESTS_CA_BUNDLE on this machine would override verify
    yield session
    session.close()  # before the server stops, so no keep-alive connection is left half-open


@pytest.fixture
def sf(server: SandboxServer, http: requests.Session, org: SandboxOrg) -> Salesforce:
    return Salesforce(instance_url=server.base_url, session_id=org.static_access_token, session=http, version="59.0")


@pytest.fixture(scope="session")
def okr_metadata() -> dict[str, ObjectMetadata]:
    """The SFDX metadata okrsync deploys (deploy/salesforce), parsed once."""
    return load_metadata(DEFAULT_METADATA_DIR)
