"""HubSpot's three e-mail directions (hs_email_direction, https://developers.hubspot.com/docs/api/crm/email):
INCOMING_EMAIL is a reply to a logged e-mail (the customer's), EMAIL was sent from or logged to the CRM by the team,
FORWARDED_EMAIL was forwarded to the CRM. A forward is not the customer getting an answer, nor a new inquiry of
theirs: it is internal, neither an inquiry nor a response unless the mapping file says so (issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.hubspot.mapping import HubSpotRow, Pipelines, to_record
from connectors.records import Activity, Direction

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sent", "direction"),
    [
        ("INCOMING_EMAIL", Direction.inbound),
        ("EMAIL", Direction.outbound),
        ("FORWARDED_EMAIL", Direction.internal),
        (None, None),
    ],
)
def test_an_email_direction(sent: str | None, direction: Direction | None) -> None:
    properties = {"hs_timestamp": "2026-11-02T09:00:00Z", "hs_email_subject": "Question", "hs_email_direction": sent}
    row = HubSpotRow("emails", "901", properties, created_at=AT, updated_at=AT)
    record = to_record(row, Pipelines())
    assert isinstance(record, Activity) and record.direction == direction
