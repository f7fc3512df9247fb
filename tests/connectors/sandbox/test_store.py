from datetime import UTC, datetime

import pytest

from connectors.sandbox.soql import parse
from connectors.sandbox.store import SandboxOrg


def test_insert_update_delete_purge() -> None:
    org = SandboxOrg()
    opp = org.insert("Opportunity", {"Name": "Deal", "StageName": "Prospecting", "Amount": 1000.0})
    assert opp["Id"].startswith("006") and len(opp["Id"]) == 18
    assert opp["IsDeleted"] is False and opp["CreatedDate"] == opp["SystemModstamp"]

    tie = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
    updated = org.update("Opportunity", opp["Id"], {"Amount": 2000.0}, modstamp=tie)
    assert updated["SystemModstamp"] == updated["LastModifiedDate"] == "2026-09-01T12:00:00.000+0000"
    assert org.get("Opportunity", opp["Id"])["Amount"] == 2000.0

    org.delete("Opportunity", opp["Id"])
    assert org.records("Opportunity") == []
    assert org.records("Opportunity", include_deleted=True)[0]["IsDeleted"] is True
    org.purge("Opportunity", opp["Id"])
    assert org.get("Opportunity", opp["Id"]) is None
    assert opp["Id"] in org.deleted_log("Opportunity")


def test_users_cannot_be_deleted_and_unknown_fields_are_refused() -> None:
    org = SandboxOrg()
    user = org.insert("User", {"Name": "Rep"})
    with pytest.raises(ValueError, match="deactivate"):
        org.delete("User", user["Id"])
    with pytest.raises(KeyError, match="Foo__c"):
        org.update("User", user["Id"], {"Foo__c": 1})


def test_mutations_are_copy_on_write_so_cursors_keep_their_snapshot() -> None:
    org = SandboxOrg()
    opp = org.insert("Opportunity", {"Name": "Deal", "Amount": 1.0})
    query = parse("SELECT Id, Amount FROM Opportunity")
    rows = query.run(org.snapshot("Opportunity"))
    locator = org.open_cursor(query, rows, 2000)
    org.update("Opportunity", opp["Id"], {"Amount": 2.0})
    assert org.cursor(locator).rows[0]["Amount"] == 1.0
    assert org.get("Opportunity", opp["Id"])["Amount"] == 2.0


def test_faults_respect_after_times_and_match() -> None:
    org = SandboxOrg()
    org.faults.add("http", status=503, after=1, times=2, match="query_more")
    fired = [bool(org.faults.take(call)) for call in ["query", "query_more", "query_more", "query_more", "query_more"]]
    assert fired == [False, False, True, True, False]
    with pytest.raises(ValueError, match="seconds"):
        org.faults.add("latency")
    with pytest.raises(ValueError, match="unknown fault kind"):
        org.faults.add("explode")
