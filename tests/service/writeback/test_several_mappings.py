"""Several mappings on one connection: two teams' hygiene rules, one team's next quarter, two teams' activity key
results — applied, computed, staged and written back to both sandbox CRMs, each team's values in the CRM.

Regression (issue 17, item 1): a second hygiene mapping on the same connection failed while staging with
``AttributeError: 'str' object has no attribute 'append'``, so it could be neither applied nor written back.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlmodel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.hubspot.connector import HubSpotConnector
from connectors.salesforce.writer import SalesforceWriter
from connectors.sandbox.hubspot_seed import portal_from_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from connectors.writes import Writer
from service.compute.models import HygieneFinding, KeyResultValue
from service.compute.service import compute
from service.kit.settings import SandboxSettings, Settings
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sync.service import run_sync
from service.writeback.service import send, stage_connection
from service.writeback.staging import mapping_prefix
from tests.conftest import ANCHOR, fast_config
from tests.service.okrs.test_commands import okrsync
from tests.service.writeback.test_hubspot_writeback import HubSpotWorld
from tests.service.writeback.world import EXAMPLES, connection, deployed_org, start_salesforce

pytestmark = pytest.mark.slow  # syncs, computes and writes back several mappings end to end, and runs the CLI

# Vertrieb DACH (all eight reps) and Inside Sales (three of them): their pipelines overlap on three reps' deals.
INSIDE_SALES = ("anna.berger", "david.garcia", "greta.lang")


def variant(tmp_path: Path, example: str, *, team: str, cycle: tuple[str, str, str] | None = None) -> Path:
    """The example file with another team name (and members), or for another cycle."""
    text = (EXAMPLES / f"{example}.yaml").read_text()
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    in_members = False
    for line in lines:
        if line.startswith("  name: ") and not out[-1].startswith("cycle"):
            line = f"  name: {team}\n"
        if line.startswith("  members:"):
            in_members = True
        elif in_members and not line.startswith("    "):
            in_members = False
        inside = in_members and "{email:" in line and team == "Inside Sales"
        if inside and not any(f"{rep}@" in line for rep in INSIDE_SALES):
            continue
        out.append(line)
    result = "".join(out)
    if team != "Vertrieb DACH":
        assert f"name: {team}" in result
    if cycle is not None:
        name, start, end = cycle
        result = result.replace("Q3 2026", name).replace("2026-07-01", start).replace("2026-09-30", end)
        # the example's sprints lie in Q3: move them by the same three months
        result = result.replace("2026-09-", "2026-12-").replace("2026-08-", "2026-11-").replace("2026-07-", "2026-10-")
    path = tmp_path / f"{example}-{team.replace(' ', '-')}-{cycle[0] if cycle else 'q3'}.yaml".replace(" ", "-")
    path.write_text(result)
    return path


@dataclass
class Files:
    hygiene_dach: Path
    hygiene_inside: Path
    hygiene_dach_next: Path
    acquisition_dach: Path
    acquisition_inside: Path


def files(tmp_path: Path) -> Files:
    return Files(
        hygiene_dach=EXAMPLES / "pipeline-hygiene.yaml",
        hygiene_inside=variant(tmp_path, "pipeline-hygiene", team="Inside Sales"),
        hygiene_dach_next=variant(
            tmp_path, "pipeline-hygiene", team="Vertrieb DACH", cycle=("Q4 2026", "2026-10-01", "2026-12-31")
        ),
        acquisition_dach=EXAMPLES / "acquisition.yaml",
        acquisition_inside=variant(tmp_path, "acquisition", team="Inside Sales"),
    )


def apply_all(engine: Engine, crm: str, paths: list[Path], settings: Settings) -> None:
    with Session(engine) as session:
        conn = connection(session, crm)
        for path in paths:
            mapping, _version = okrs.apply(
                session, okrs.load_path(path), connection=conn, author="test", reason="test", now=ANCHOR
            )
            compute(session, mapping=mapping, as_of=ANCHOR)
        stage_connection(session, connection=conn, settings=settings, as_of=ANCHOR)
        session.commit()


def expected(engine: Engine, crm: str) -> tuple[dict[str, dict[str, int]], dict[str, KeyResultValue], dict[str, str]]:
    """Per opportunity, the findings of each team's current (Q3) hygiene mapping; every key result by okrsync id;
    the team of each mapping id."""
    with Session(engine) as session:
        conn = connection(session, crm)
        mappings = {
            m.id: m for m in session.exec(sqlmodel.select(OkrMapping).where(OkrMapping.connection_id == conn.id)).all()
        }
        findings: dict[str, dict[str, int]] = defaultdict(Counter)
        for row in session.exec(sqlmodel.select(HygieneFinding)).all():
            mapping = mappings.get(row.mapping_id)
            if mapping is not None and mapping.cycle == "Q3 2026 hygiene":
                findings[row.opportunity_id][mapping.team] += 1
        krs = {
            f"{mapping_prefix(mappings[row.mapping_id])}/{row.kr_key}": row
            for row in session.exec(sqlmodel.select(KeyResultValue)).all()
            if row.mapping_id in mappings
        }
        return findings, krs, {str(k): m.team for k, m in mappings.items()}


def issues_by_team(text: str | None) -> Counter[str]:
    teams: Counter[str] = Counter()
    for line in (text or "").splitlines():
        team, _sep, _issue = line.partition(": ")
        teams[team] += 1
    return teams


def check_opportunities(opportunities: dict[str, str | None], findings: Any) -> None:
    """``opportunities``: CRM id → the hygiene issues written on it."""
    flagged = {oid for oid, issues in opportunities.items() if issues}
    assert flagged == set(findings), "the CRM's flagged opportunities differ from the computed findings"
    both = [oid for oid, teams in findings.items() if len(teams) == 2]
    assert both, "no opportunity is flagged by both teams: the test would not show the overlap"
    for oid, teams in findings.items():
        written = issues_by_team(opportunities[oid])
        assert written == teams, (oid, written, teams)  # each line names the team whose rules flagged it


def check_contributions(written: set[str], krs: dict[str, KeyResultValue]) -> None:
    """Each team's activity key results have their own contribution records, under their own key results."""
    for team in ("inside-sales", "vertrieb-dach"):
        mine = {key for key in written if key.startswith(f"{team}/q3-2026/discovery-meetings/")}
        assert mine, f"no contribution of {team} to its discovery meetings"
    assert {key.rsplit("/", 1)[0] for key in written} <= set(krs)


# --- Salesforce ---------------------------------------------------------------------------------------------------


@pytest.fixture
def salesforce(engine: Engine, tmp_path: Path) -> Iterator[tuple[Any, Files]]:
    with ExitStack() as stack:
        yield start_salesforce(stack, engine, tmp_path, deployed_org(), fast_config), files(tmp_path)


def test_salesforce_holds_each_teams_values(salesforce: tuple[Any, Files]) -> None:
    world, f = salesforce
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    paths = [f.hygiene_dach, f.hygiene_inside, f.hygiene_dach_next, f.acquisition_dach, f.acquisition_inside]
    apply_all(world.engine, "salesforce", paths, settings)
    writer: Writer = SalesforceWriter(fast_config(world.server))
    with Session(world.engine) as session:
        conn_id = connection(session, "salesforce").id or 0
    report = send(world.engine, writer, connection_id=conn_id)
    assert not report.problems and report.stopped is None, report.summary()

    findings, krs, _teams = expected(world.engine, "salesforce")
    opportunities = {o["Id"]: o.get("OKR_Hygiene_Issues__c") for o in world.org.records("Opportunity")}
    check_opportunities(opportunities, findings)
    check_contributions({r["Okrsync_Id__c"] for r in world.org.records("OKR_Contribution__c")}, krs)
    written = {r["Okrsync_Id__c"]: r for r in world.org.records("OKR_Key_Result__c")}
    assert set(written) == set(krs)
    assert {key.split("/")[0] for key in written} == {"inside-sales", "vertrieb-dach"}
    for key, row in krs.items():
        assert written[key]["Value__c"] == (round(row.value, 4) if row.value is not None else None), key


# --- HubSpot -------------------------------------------------------------------------------------------------------


@pytest.fixture
def hubspot(engine: Engine, tmp_path: Path) -> Iterator[tuple[HubSpotWorld, Files]]:
    from connectors.sandbox.generator import generate_org

    with ExitStack() as stack:
        data = generate_org(anchor=ANCHOR, seed=7, accounts=30, opportunities=80, activities=3200)
        portal, _ids = portal_from_org(data, tier="enterprise")
        server = stack.enter_context(SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp_path / "sandbox"))
        world = HubSpotWorld(portal, server, engine, "custom_objects")
        run_sync(engine, HubSpotConnector(world.config()), connection_name="sandbox")
        world.writer().provision()
        yield world, files(tmp_path)


def test_hubspot_holds_each_teams_values(hubspot: tuple[HubSpotWorld, Files]) -> None:
    world, f = hubspot
    settings = Settings(_env_file=None, sandbox=SandboxSettings(hubspot_writeback_mode="custom_objects"))  # type: ignore[call-arg]
    paths = [f.hygiene_dach, f.hygiene_inside, f.hygiene_dach_next, f.acquisition_dach, f.acquisition_inside]
    apply_all(world.engine, "hubspot", paths, settings)
    report = world.send()
    assert not report.problems and report.stopped is None, report.summary()

    findings, krs, _teams = expected(world.engine, "hubspot")
    opportunities = {d["id"]: d["properties"].get("okrsync_hygiene_issues") for d in world.portal.records("deals")}
    check_opportunities(opportunities, findings)
    check_contributions({r["properties"]["okrsync_id"] for r in world.portal.records("okr_contribution")}, krs)
    written = {r["properties"]["okrsync_id"]: r for r in world.portal.records("okr_key_result")}
    assert set(written) == set(krs)
    for key, row in krs.items():
        value = written[key]["properties"].get("value")
        assert (float(value) if value not in (None, "") else None) == (
            round(row.value, 4) if row.value is not None else None
        ), key


# --- the CLI, as the issue reproduced it ------------------------------------------------------------------------


def test_cli_applies_a_second_hygiene_mapping_beside_the_first(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert okrsync(workdir, "sync", "salesforce", "--sandbox").returncode == 0
    f = files(tmp_path)
    first = okrsync(workdir, "mappings", "apply", str(f.hygiene_dach), "--as-of", "2026-09-30T18:00:00")
    assert first.returncode == 0, first.stderr
    for second, name in (
        (f.hygiene_inside, "Inside Sales / Q3 2026 hygiene"),
        (f.hygiene_dach_next, "Vertrieb DACH / Q4 2026 hygiene"),
    ):
        applied = okrsync(workdir, "mappings", "apply", str(second), "--as-of", "2026-09-30T18:00:00")
        assert applied.returncode == 0, applied.stderr
        assert f"{name}: version 1" in applied.stdout, applied.stdout
