"""The daily stand-up over real HTTP (page and ``/api/v1``) on the dashboard's computed sandbox world, SQLite and
PostgreSQL: what each member logged since the last working day that counts, checked against a count written here
from the CRM's own rows (activities, accounts, owners), the burn-down likewise, the hygiene findings on their
opportunities, a Monday (Friday's activities count), a day without a running sprint, a bad day, and the roles.

The acquisition example's sprint 2 (2026-08-24 – 2026-09-04) commits to 25 meetings with prospects and serves
discovery-meetings (the same meetings) and meetings-to-opportunities (its denominator is the same meetings): every
prospect meeting of a member counts for all three."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from html import escape

import httpx
import pytest
import sqlmodel
import yaml
from sqlalchemy import create_engine
from sqlmodel import Session

from service.app import create_app
from service.compute.models import HygieneFinding
from service.compute.service import compute
from service.crm.models import Account, Activity, Owner
from service.kit.auth import Role
from service.kit.settings import Settings
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from tests.conftest import ANCHOR
from tests.service.dashboard.conftest import TODAY, DashboardWorld
from tests.service.writeback.world import EXAMPLES, connection

MONDAY = date(2026, 8, 31)  # inside acquisition sprint 2 (2026-08-24 – 2026-09-04)
FRIDAY = date(2026, 8, 28)
SPRINT_START, SPRINT_END, COMMITTED = date(2026, 8, 24), date(2026, 9, 4), 25
SERVED = ["commitment", "discovery-meetings", "meetings-to-opportunities"]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _mapping(world: DashboardWorld, session: Session, example: str = "acquisition") -> OkrMapping:
    found = session.get(OkrMapping, world.mappings[example])
    assert found is not None
    return found


def _owners_by_member(session: Session, mapping: OkrMapping) -> dict[str, set[str]]:
    """member e-mail -> the CRM users with that e-mail on the mapping's connection, by hand."""
    config = okrs.current_config(session, mapping)
    owners = session.exec(sqlmodel.select(Owner).where(Owner.connection_id == mapping.connection_id)).all()
    return {
        m.email: {o.external_id for o in owners if (o.email or "").lower() == m.email.lower()}
        for m in config.team.members
    }


def _prospect_meetings(session: Session, mapping: OkrMapping, start: datetime, end: datetime) -> list[Activity]:
    """The team's meetings on prospect accounts dated in [start, end): what the sprint-2 commitment counts."""
    team = set().union(*_owners_by_member(session, mapping).values())
    prospects = {
        a.external_id
        for a in session.exec(
            sqlmodel.select(Account).where(
                Account.connection_id == mapping.connection_id, Account.account_type == "Prospect"
            )
        ).all()
    }
    rows = session.exec(
        sqlmodel.select(Activity).where(
            Activity.connection_id == mapping.connection_id,
            Activity.activity_kind == "meeting",
            Activity.is_deleted == False,  # noqa: E712
        )
    ).all()
    return [
        r
        for r in rows
        if r.owner_id in team
        and r.account_id in prospects
        and r.occurred_at is not None
        and start <= _aware(r.occurred_at) < end
    ]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _api(world: DashboardWorld, mapping_id: int, role: str = "viewer", **params: str) -> httpx.Response:
    with world.client(role) as client:
        return client.get(f"/api/v1/mappings/{mapping_id}/standup", params=params)


def test_on_a_monday_fridays_activities_count_for_the_sprint_and_its_key_results(world: DashboardWorld) -> None:
    with Session(world.engine) as session:
        mapping = _mapping(world, session)
        owners = _owners_by_member(session, mapping)
        logged = _prospect_meetings(session, mapping, _midnight(FRIDAY), _midnight(MONDAY + timedelta(days=1)))
        in_sprint = _prospect_meetings(session, mapping, _midnight(SPRINT_START), _midnight(MONDAY + timedelta(1)))
    expected = {email: {a.external_id for a in logged if a.owner_id in ids} for email, ids in owners.items()}
    fridays = [a for a in logged if _aware(a.occurred_at).date() == FRIDAY]  # type: ignore[arg-type]
    assert logged and fridays, "the sandbox should have prospect meetings on Friday 2026-08-28 for this test to bite"

    response = _api(world, mapping.id or 0, day=MONDAY.isoformat())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["day"], body["since"]) == ("2026-08-31", "2026-08-28")  # Monday looks back to Friday
    assert body["window_start"].startswith("2026-08-28T00:00:00") and body["window_end"].startswith("2026-09-01T00")
    assert (body["sprint"], body["committed"]) == ("acquisition-sprint-2", COMMITTED)
    assert [t["key"] for t in body["counts_toward"]] == SERVED
    members = {m["email"]: m for m in body["members"]}
    assert set(members) == set(owners)
    for email, ids in expected.items():
        member = members[email]
        assert {r["record_id"] for r in member["logged"]} == ids, email
        assert all(r["counts_for"] == SERVED and r["kind"] == "meeting" for r in member["logged"])
        assert member["counted"] == ({key: len(ids) for key in SERVED} if ids else {})
        own = sum(1 for a in in_sprint if a.owner_id in owners[email])
        assert member["sprint_done"] == own, email
    assert {r["record_id"] for m in body["members"] for r in m["logged"]} >= {a.external_id for a in fridays}

    # burn-down: one point per sprint day up to Monday, done = the team's prospect meetings up to the day's end
    per_day = Counter(_aware(a.occurred_at).date() for a in in_sprint)  # type: ignore[arg-type]
    days = [SPRINT_START + timedelta(days=n) for n in range((MONDAY - SPRINT_START).days + 1)]
    done = [sum(per_day[d] for d in days[: i + 1]) for i in range(len(days))]
    assert [p["day"] for p in body["burn_down"]] == [d.isoformat() for d in days]
    assert [p["done"] for p in body["burn_down"]] == done
    assert [p["remaining"] for p in body["burn_down"]] == [COMMITTED - n for n in done]
    assert [p["ideal"] for p in body["burn_down"]] == pytest.approx(
        [COMMITTED * (SPRINT_END - d).days / 12 for d in days]
    )

    with world.client("viewer") as client:
        page = client.get(f"/dashboard/{mapping.id}/standup", params={"day": MONDAY.isoformat()})
    assert page.status_code == 200, page.text[:2000]
    html = page.text
    assert "Daily stand-up: Acquisition sprint 2" in html and "since 2026-08-28, the last working day" in html
    assert "Monday to Friday" in html
    assert html.count('<article class="member-card"') == len(owners)
    assert html.count('<li><span class="when">') == len(logged)
    for activity in fridays:
        assert escape(activity.subject or activity.external_id) in html
    assert '<svg class="burn-down"' in html and 'class="ideal"' in html
    points = html.split('<polyline class="actual" points="')[1].split('"')[0].split()
    assert len(points) == len(days) + 1  # the start, then one per sprint day so far
    assert f"{COMMITTED - done[-1]}</td>" in html.split("burn-down-days")[1]


def test_blocked_items_are_the_hygiene_findings_on_each_members_opportunities(world: DashboardWorld) -> None:
    with Session(world.engine) as session:
        mapping = _mapping(world, session)
        owners = _owners_by_member(session, mapping)
        findings = session.exec(
            sqlmodel.select(HygieneFinding).where(HygieneFinding.mapping_id == world.mappings["pipeline-hygiene"])
        ).all()
    expected = {email: {f.opportunity_id for f in findings if f.owner_id in ids} for email, ids in owners.items()}
    assert any(expected.values())
    body = _api(world, mapping.id or 0, day=MONDAY.isoformat()).json()
    assert body["hygiene_mapping_id"] == world.mappings["pipeline-hygiene"]
    for member in body["members"]:
        assert {p["opportunity_id"] for p in member["blocked"]} == expected[member["email"]], member["email"]
        assert all(p["problems"] for p in member["blocked"])
    with world.client("viewer") as client:
        html = client.get(f"/dashboard/{mapping.id}/standup?day={MONDAY}").text
    assert "Blocked or overdue" in html and 'class="rule">no_next_step</span> No next step' in html
    german = _html_de(world, mapping.id or 0)
    assert "Blockiert oder überfällig" in german and "seit 2026-08-28, dem letzten Arbeitstag" in german
    assert "No next step" not in german and "Blocked or overdue" not in german


def _html_de(world: DashboardWorld, mapping_id: int) -> str:
    with world.client("viewer") as client:
        response = client.get(f"/dashboard/{mapping_id}/standup", params={"day": MONDAY.isoformat(), "lang": "de"})
    assert response.status_code == 200
    return response.text


def test_no_running_sprint_names_the_last_and_the_next_one(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    with world.client("viewer") as client:
        today = client.get(f"/dashboard/{mapping_id}/standup")  # the dashboard's clock: 2026-09-28
        between = client.get(f"/dashboard/{mapping_id}/standup?day=2026-08-18")
    assert TODAY.date() == date(2026, 9, 28)
    assert today.status_code == 200 and "No sprint is running on 2026-09-28" in today.text
    assert "Last sprint: Acquisition sprint 3, 2026-09-14 – 2026-09-25" in today.text
    assert "Next sprint" not in today.text
    assert between.status_code == 200 and "No sprint is running on 2026-08-18" in between.text
    assert "Last sprint: Acquisition sprint 1, 2026-08-03 – 2026-08-14" in between.text
    assert "Next sprint: Acquisition sprint 2, 2026-08-24 – 2026-09-04" in between.text

    refused = _api(world, mapping_id, day="2026-08-18")
    assert refused.status_code == 409
    assert refused.json()["error"] == "conflict"
    detail = refused.json()["detail"]
    assert f"(mapping {mapping_id}) runs on 2026-08-18" in detail
    assert "acquisition-sprint-1, 2026-08-03 – 2026-08-14" in detail and "acquisition-sprint-2, 2026-08-24" in detail
    without_sprints = _api(world, world.mappings["customer-care"], day="2026-08-18")
    assert without_sprints.status_code == 409 and "has no sprints" in without_sprints.json()["detail"]
    assert _api(world, 999_999, day="2026-08-31").status_code == 404


@pytest.mark.parametrize("day", ["2026-13-45", "monday", "1800-01-01"], ids=["no-such-date", "a-word", "too-early"])
def test_a_bad_day_is_a_422_naming_the_parameter(world: DashboardWorld, day: str) -> None:
    mapping_id = world.mappings["acquisition"]
    refused = _api(world, mapping_id, day=day)
    assert refused.status_code == 422 and refused.json()["error"] == "invalid"
    assert "day" in refused.json()["detail"]
    with world.client("viewer") as client:
        page = client.get(f"/dashboard/{mapping_id}/standup", params={"day": day})
    assert page.status_code == 422 and "day" in page.text and "Invalid request" in page.text


def test_every_role_may_read_the_stand_up_and_nobody_without_a_token(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    for role in Role:
        assert _api(world, mapping_id, role.value, day=MONDAY.isoformat()).status_code == 200, role
    with world.client() as anonymous:
        api = anonymous.get(f"/api/v1/mappings/{mapping_id}/standup?day={MONDAY}")
        page = anonymous.get(f"/dashboard/{mapping_id}/standup?day={MONDAY}")
    with world.client(Authorization="Bearer okr_not-a-token") as stranger:
        unknown = stranger.get(f"/api/v1/mappings/{mapping_id}/standup?day={MONDAY}")
    assert api.status_code == 401 and unknown.status_code == 401
    assert page.status_code == 303 and page.headers["location"].startswith("/dashboard/login?next=")


def test_the_sprints_page_and_the_overview_link_to_the_stand_up(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    with world.client("viewer") as client:
        sprints_page = client.get(f"/dashboard/{mapping_id}/sprints").text
        overview = client.get(f"/dashboard/{mapping_id}").text
        projector = client.get(f"/dashboard/{mapping_id}/standup?day={MONDAY}&projector=1")
        without_sprints = client.get(f"/dashboard/{world.mappings['customer-care']}").text
    link = f'href="/dashboard/{mapping_id}/standup"'
    assert link in sprints_page and link in overview
    assert "/standup" not in without_sprints  # a cycle without sprints has no stand-up to offer
    assert projector.status_code == 200 and 'class="standup projector"' in projector.text
    assert "default-src 'self'" in projector.headers["content-security-policy"]


def test_the_api_documents_the_stand_up() -> None:
    app = create_app(settings=Settings(_env_file=None), engine=create_engine("sqlite://"), crms={})  # type: ignore[call-arg]
    operation = app.openapi()["paths"]["/api/v1/mappings/{mapping_id}/standup"]["get"]
    assert {"200", "401", "404", "409", "422"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"]] == ["mapping_id", "day"]


def test_with_a_team_calendar_its_closed_days_are_skipped(world: DashboardWorld) -> None:
    """The same team as a second mapping whose calendar closes Friday 2026-08-28: on Monday the stand-up looks back
    to Thursday, so Thursday's meetings count too."""
    data = yaml.safe_load((EXAMPLES / "acquisition.yaml").read_text())
    data["team"]["name"] = "Vertrieb DACH (calendar)"
    data["team"]["calendar"] = {"time_zone": "Europe/Berlin", "closed": [FRIDAY.isoformat()]}
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    with Session(world.engine) as session:
        mapping, _version = okrs.apply(
            session, okrs.load(text, filename="calendar.yaml"), connection=connection(session, "salesforce"),
            author="test", reason="a team calendar", now=ANCHOR,
        )  # fmt: skip
        compute(session, mapping=mapping, as_of=ANCHOR)
        session.commit()
        thursday = FRIDAY - timedelta(days=1)
        logged = _prospect_meetings(session, mapping, _midnight(thursday), _midnight(MONDAY + timedelta(days=1)))
        mapping_id = mapping.id or 0
    assert any(_aware(a.occurred_at).date() == thursday for a in logged)  # type: ignore[arg-type]
    body = _api(world, mapping_id, day=MONDAY.isoformat()).json()
    assert body["since"] == thursday.isoformat()
    assert {r["record_id"] for m in body["members"] for r in m["logged"]} == {a.external_id for a in logged}
    with world.client("viewer") as client:
        html = client.get(f"/dashboard/{mapping_id}/standup?day={MONDAY}").text
    assert f"since {thursday}, the last working day" in html and "by the team&#39;s calendar" in html
