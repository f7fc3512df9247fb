import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg


def soon() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=1)


def test_query_pages_through_query_more(sf: Salesforce, org: SandboxOrg) -> None:
    first = sf.query("SELECT Id, Subject FROM Task ORDER BY Id")
    total = len(org.records("Task"))
    assert total > 2000
    assert (first["totalSize"], first["done"], len(first["records"])) == (total, False, 2000)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
    assert first["records"][0]["attributes"]["type"] == "Task"
    assert set(first["records"][0]) == {"attributes", "Id", "Subject"}

    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert second["done"] and "nextRecordsUrl" not in second
    ids = [row["Id"] for row in first["records"] + second["records"]]
    assert ids == sorted(row["Id"] for row in org.records("Task"))
    assert org.api_calls == {"query": 1, "query_more": 1}


def test_batch_size_header(sf: Salesforce, org: SandboxOrg) -> None:
    rows = sf.query_all("SELECT Id FROM Task", headers={"Sforce-Query-Options": "batchSize=500"})["records"]
    assert len(rows) == len(org.records("Task"))
    assert org.api_calls["query_more"] == (len(rows) - 1) // 500


def test_query_excludes_deleted_and_query_all_excludes_only_purged(sf: Salesforce, org: SandboxOrg) -> None:
    soft, hard = (row["Id"] for row in org.records("Opportunity")[:2])
    org.delete("Opportunity", soft)
    org.purge("Opportunity", hard)
    live = {row["Id"] for row in sf.query_all("SELECT Id FROM Opportunity")["records"]}
    with_deleted = sf.query_all("SELECT Id, IsDeleted FROM Opportunity", include_deleted=True)["records"]
    assert soft not in live and hard not in live
    assert {row["Id"]: row["IsDeleted"] for row in with_deleted}[soft] is True
    assert hard not in {row["Id"] for row in with_deleted}
    assert org.api_calls["queryAll"] == 1


def test_get_deleted_and_get_updated(sf: Salesforce, org: SandboxOrg) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    soft, hard, changed = (row["Id"] for row in org.records("Opportunity")[:3])
    org.delete("Opportunity", soft)
    org.purge("Opportunity", hard)
    org.update("Opportunity", changed, {"NextStep": "Sign"})
    deleted = sf.Opportunity.deleted(start, soon())
    assert {row["id"] for row in deleted["deletedRecords"]} == {soft, hard}
    assert {"earliestDateAvailable", "latestDateCovered"} <= set(deleted)
    assert sf.Opportunity.updated(start, soon())["ids"] == [changed]
    assert org.api_calls == {"getDeleted": 1, "getUpdated": 1}
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.Opportunity.deleted(datetime.now(UTC) - timedelta(days=31), soon())
    assert raised.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_soql_errors_and_bad_locator(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query("SELECT Id, Foo__c FROM Opportunity")
    assert raised.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Foo__c' on entity 'Opportunity'" in raised.value.content[0]["message"]
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.query_more("/services/data/v59.0/query/01gXXXXXXXXXXXXXXX-2000", identifier_is_url=True)
    assert raised.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


@pytest.mark.parametrize(
    ("params", "exception", "error_code"),
    [
        ({"status": 503, "error_code": "SERVER_UNAVAILABLE"}, SalesforceGeneralError, "SERVER_UNAVAILABLE"),
        ({"status": 429}, SalesforceGeneralError, "REQUEST_LIMIT_EXCEEDED"),
        (
            {"status": 403, "error_code": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."},
            SalesforceRefusedRequest,
            "REQUEST_LIMIT_EXCEEDED",
        ),
        (
            {"status": 400, "error_code": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"},
            SalesforceMalformedRequest,
            "UNABLE_TO_LOCK_ROW",
        ),
    ],
    ids=["503", "429", "403-limit", "400-lock"],
)
def test_http_faults(sf: Salesforce, org: SandboxOrg, params: dict, exception: type, error_code: str) -> None:
    org.faults.add("http", match="query", after=1, **params)
    sf.query("SELECT Id FROM User")
    with pytest.raises(exception) as raised:
        sf.query("SELECT Id FROM User")
    assert raised.value.status == params["status"]
    assert raised.value.content[0]["errorCode"] == error_code
    assert sf.query("SELECT Id FROM User")["totalSize"] == 11
    assert org.api_calls_total == 3


def test_expire_session_with_bare_token(sf: Salesforce, org: SandboxOrg, server: SandboxServer, http) -> None:
    org.faults.add("expire_session", match="query")
    with pytest.raises(SalesforceExpiredSession) as raised:
        sf.query("SELECT Id FROM User")
    assert raised.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    with pytest.raises(SalesforceExpiredSession):
        sf.limits()
    token = http.post(
        f"{server.base_url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": org.consumer_key,
            "client_secret": org.consumer_secret,
        },
    ).json()["access_token"]
    fresh = Salesforce(instance_url=server.base_url, session_id=token, session=http, version="59.0")
    assert fresh.query("SELECT Id FROM User")["totalSize"] == 11


def test_credentials_client_refreshes_itself_after_expiry(server: SandboxServer, org: SandboxOrg) -> None:
    sf = Salesforce(
        username=org.username,
        password=org.password + org.security_token,
        consumer_key=org.consumer_key,
        consumer_secret=org.consumer_secret,
        session=server.session(),
        version="59.0",
    )
    assert sf.sf_instance == f"127.0.0.1:{server.port}"
    org.faults.add("expire_session", match="query")
    assert sf.query("SELECT Id FROM User")["totalSize"] == 11
    assert org.token_requests == 2 and org.api_calls["query"] == 2


def test_drop_breaks_the_connection_mid_response(sf: Salesforce, org: SandboxOrg) -> None:
    org.faults.add("drop", match="query_more")
    first = sf.query("SELECT Id FROM Task")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)["done"]


def test_latency_delays_but_succeeds(sf: Salesforce, org: SandboxOrg) -> None:
    org.faults.add("latency", seconds=0.4, match="limits")
    started = time.monotonic()
    assert sf.limits()["DailyApiRequests"]["Max"] == 100_000
    assert time.monotonic() - started >= 0.4


def test_mutate_changes_records_during_a_sync(sf: Salesforce, org: SandboxOrg) -> None:
    org.faults.add("mutate", match="query_more", sobject="Task", count=3)
    first = sf.query("SELECT Id, Description, SystemModstamp FROM Task ORDER BY Id")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(org.mutations) == 3
    changed = {record_id for _, record_id in org.mutations}
    served = {row["Id"]: row for row in first["records"] + second["records"]}
    assert all(served[record_id]["Description"] is None for record_id in changed)  # cursor kept its snapshot
    assert all(org.get("Task", record_id)["Description"].startswith("Changed") for record_id in changed)


def test_limit_info_and_daily_limit(sf: Salesforce, org: SandboxOrg) -> None:
    org.api_usage_used = 41
    sf.query("SELECT Id FROM User")
    assert sf.api_usage["api-usage"].used == 42 and sf.api_usage["api-usage"].total == 100_000
    assert sf.limits()["DailyApiRequests"]["Remaining"] == 100_000 - 43
    org.api_usage_used = org.daily_api_limit
    with pytest.raises(SalesforceRefusedRequest) as raised:
        sf.query("SELECT Id FROM User")
    assert raised.value.content[0] == {
        "message": "TotalRequests Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED",
    }


def test_missing_token_and_unknown_resource(server: SandboxServer, http: requests.Session, org: SandboxOrg) -> None:
    answer = http.get(f"{server.base_url}/services/data/v59.0/query", params={"q": "SELECT Id FROM User"})
    assert answer.status_code == 401 and answer.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert answer.headers["Sforce-Limit-Info"] == "api-usage=0/100000"
    answer = http.get(
        f"{server.base_url}/services/data/v59.0/nothing", headers={"Authorization": "Bearer sandbox-access-token"}
    )
    assert answer.status_code == 404 and answer.json()[0]["errorCode"] == "NOT_FOUND"
    assert org.api_calls_total == 2


def test_describe(sf: Salesforce) -> None:
    described = sf.Opportunity.describe()
    assert described["name"] == "Opportunity"
    assert {"name": "Segment__c", "type": "picklist", "custom": True} in described["fields"]


def _token(http: requests.Session, server: SandboxServer, **form: str) -> requests.Response:
    return http.post(f"{server.base_url}/services/oauth2/token", data=form)


def test_password_and_client_credentials_grants(server: SandboxServer, http: requests.Session, org: SandboxOrg) -> None:
    good = _token(
        http,
        server,
        grant_type="password",
        client_id=org.consumer_key,
        client_secret=org.consumer_secret,
        username=org.username,
        password=org.password + org.security_token,
    )
    body = good.json()
    assert good.status_code == 200 and body["instance_url"] == server.base_url and body["token_type"] == "Bearer"
    assert {"access_token", "id", "issued_at", "signature"} <= set(body)
    bad = _token(
        http,
        server,
        grant_type="password",
        client_id=org.consumer_key,
        client_secret=org.consumer_secret,
        username=org.username,
        password=org.password,
    )
    assert bad.status_code == 400 and bad.json() == {
        "error": "invalid_grant",
        "error_description": "authentication failure",
    }
    wrong_client = _token(http, server, grant_type="client_credentials", client_id="nope", client_secret="x")
    assert wrong_client.json()["error"] == "invalid_client_id"
    basic = http.post(
        f"{server.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(org.consumer_key, org.consumer_secret),
    )
    assert basic.status_code == 200
    assert org.token_requests == 4 and org.api_calls_total == 0


def test_jwt_bearer_grant(org: SandboxOrg) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    org.jwt_public_key_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with SandboxServer(org) as server:
        sf = Salesforce(
            username=org.username,
            consumer_key=org.consumer_key,
            privatekey=private_pem,
            session=server.session(),
            version="59.0",
        )
        assert sf.query("SELECT Id FROM User")["totalSize"] == 11
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(
            {"iss": org.consumer_key, "sub": org.username, "exp": int(time.time()) + 60}, other_key, algorithm="RS256"
        )
        answer = server.session().post(
            f"{server.base_url}/services/oauth2/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": forged},
        )
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_control_api(server: SandboxServer, http: requests.Session, org: SandboxOrg, sf: Salesforce) -> None:
    added = http.post(f"{server.base_url}/__sandbox/faults", json={"kind": "http", "status": 503, "match": "limits"})
    assert added.status_code == 201
    with pytest.raises(SalesforceGeneralError):
        sf.limits()
    stats = http.get(f"{server.base_url}/__sandbox/stats").json()
    assert stats["api_calls"] == {"limits": 1} and stats["api_calls_total"] == 1 and stats["api_usage_used"] == 1
    assert http.post(f"{server.base_url}/__sandbox/reset-stats").status_code == 204
    assert http.delete(f"{server.base_url}/__sandbox/faults").status_code == 204
    assert len(org.faults) == 0 and org.api_calls_total == 0
    assert http.post(f"{server.base_url}/__sandbox/faults", json={"kind": "boom"}).status_code == 422


def test_queries_answered_in_full_do_not_push_out_a_cursor_still_paged(sf: Salesforce, org: SandboxOrg) -> None:
    """At most 10 open query cursors per user; a query answered in one page has nothing left to fetch, so ten of
    them (the e-mail look-ups between two pages of tasks) leave the task query's cursor open, while ten queries
    still being paged push it out (INVALID_QUERY_LOCATOR)."""
    first = sf.query("SELECT Id FROM Task ORDER BY Id")
    assert not first["done"]
    for _ in range(10):
        assert sf.query("SELECT Id FROM Account LIMIT 5")["done"]
    assert sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)["records"]
    paged = sf.query("SELECT Id FROM Task ORDER BY Id")
    for _ in range(10):
        assert not sf.query("SELECT Id FROM Task ORDER BY Id")["done"]
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_QUERY_LOCATOR"):
        sf.query_more(paged["nextRecordsUrl"], identifier_is_url=True)
