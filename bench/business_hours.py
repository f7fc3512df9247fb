"""Business hours: what measuring a response-time key result in a team's open hours costs against the wall clock.

The data is bench/compute.py's: the sandbox generator's Salesforce org (seed 42; 1,000,000 activities by default),
mapped and stored without HTTP. Two mappings of the same team hold one key result each, "inquiries answered within
4 hours" (share_within, matched by account): one on the wall clock, one in business hours (``hours: business``,
Europe/Berlin, Monday–Friday 08:00–18:00, Berlin's public holidays). Each is computed in full on its own (no
evidence shared between them), ``--rounds`` times; the fastest round counts.

Beside each, its floors, measured in the same run:

* ``evidence SQL``: the slowest statement of the compute, the ``INSERT … SELECT`` that finds every inquiry and its
  first response (the KR's evidence), the same SQL on both clocks;
* ``statistic``: ``mappings.metrics.response_time`` over the stored waits, wall clock and business hours; the
  difference is what the business-hours clock costs (``business_seconds`` once per inquiry).

    python -m bench business-hours                                    # 1,000,000 activities
    python -m bench business-hours --activities 100000 --opportunities 10000
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlmodel import Session

from bench.compute import ANCHOR, CYCLE, Target, _apply_mappings, _commit, _load, _open
from connectors.sandbox.generator import generate_org
from mappings.calendar import BusinessCalendar
from mappings.config import ResponseTimeMetric
from mappings.metrics import response_time
from service.compute.models import KeyResultValue
from service.compute.repository import waits
from service.compute.service import compute
from service.kit.db import analyze
from service.okrs.models import OkrMapping
from service.okrs.service import current_config

CALENDAR = {
    "time_zone": "Europe/Berlin",
    "working_days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
    "opens": "08:00",
    "closes": "18:00",
    "holidays": {"country": "DE", "subdivision": "BE"},
}
METRIC = {"type": "response_time", "statistic": "share_within", "within_hours": 4, "match": "account"}


def _config(members: list[dict[str, str]], *, hours: str) -> dict[str, Any]:
    return {
        "version": 1,
        "team": {"name": "Vertrieb DACH", "members": members, "calendar": CALENDAR},
        "cycle": {**CYCLE, "name": f"Q3 2026 {hours}"},
        "objectives": [
            {
                "key": "customers",
                "title": "Our customers get answers",
                "key_results": [
                    {
                        "key": "answered-within-4h",
                        "title": f"Inquiries answered within 4 hours ({hours})",
                        "metric": {**METRIC, "hours": hours},
                        "baseline": 0.2,
                        "target": 0.6,
                    }
                ],
            }
        ],
    }


def _full_compute(target: Target, mapping_id: int) -> tuple[float, float | None, float]:
    """One full compute of a mapping: (wall seconds with the commit, the KR's value, seconds of its slowest SQL
    statement, the evidence INSERT … SELECT)."""
    target.timer.reset()
    target.timer.active = True
    started = time.perf_counter()
    with Session(target.engine, expire_on_commit=False) as session:
        mapping = session.get(OkrMapping, mapping_id)
        assert mapping is not None
        compute(session, mapping=mapping, as_of=ANCHOR)
        session.commit()
    seconds = time.perf_counter() - started
    target.timer.active = False
    ((_statement, slowest),) = target.timer.top(1)
    with Session(target.engine) as session:
        value = session.get(KeyResultValue, (mapping_id, "answered-within-4h"))
        return seconds, value.value if value else None, slowest.seconds


def _statistic_floors(target: Target, mapping_id: int) -> dict[str, Any]:
    """``response_time`` over the stored waits on both clocks: what the business-hours clock adds."""
    with Session(target.engine) as session:
        mapping = session.get(OkrMapping, mapping_id)
        assert mapping is not None
        config = current_config(session, mapping)
        metric = config.key_result("answered-within-4h").metric
        assert isinstance(metric, ResponseTimeMetric) and isinstance(config.team.calendar, BusinessCalendar)
        stored = waits(session, mapping_id=mapping_id, kr_key="answered-within-4h")
    wall_metric = metric.model_copy(update={"hours": "wall_clock"})
    started = time.perf_counter()
    wall = response_time(wall_metric, stored, ANCHOR)
    wall_seconds = time.perf_counter() - started
    started = time.perf_counter()
    business = response_time(metric, stored, ANCHOR, config.team.calendar)
    business_seconds = time.perf_counter() - started
    return {
        "inquiries": len(stored),
        "statistic_wall_seconds": round(wall_seconds, 4),
        "statistic_business_seconds": round(business_seconds, 4),
        "value_wall": wall.value,
        "value_business": business.value,
    }


def run(*, activities: int, opportunities: int, accounts: int | None = None, rounds: int = 3) -> dict[str, Any]:
    accounts = accounts or max(100, opportunities // 5)
    results: dict[str, Any] = {
        "activities": activities, "opportunities": opportunities, "accounts": accounts, "rounds": rounds,
        "commit": _commit(), "database": "sqlite",
    }  # fmt: skip
    org = generate_org(seed=42, accounts=accounts, opportunities=opportunities, activities=activities, anchor=ANCHOR)
    members = [{"email": u["Email"], "name": u["Name"]} for u in org["User"][1:]]
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-hours-") as folder:
        target = _open("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}")
        _load([target], org)
        analyze(target.engine)  # as a sync does after writing 5,000 rows or more
        _apply_mappings(target, {hours: _config(members, hours=hours) for hours in ("wall_clock", "business")})
        for hours, mapping_id in target.mappings.items():
            timings, sql, value = [], [], None
            for n in range(rounds):
                seconds, value, evidence_sql = _full_compute(target, mapping_id)
                timings.append(seconds)
                sql.append(evidence_sql)
                print(f"business-hours: {hours} round {n + 1}: {seconds:.3f} s", file=sys.stderr)
            results[hours] = {
                "seconds": round(min(timings), 3), "all": [round(t, 3) for t in timings], "value": value,
                "evidence_sql_seconds": round(min(sql), 3),
            }  # fmt: skip
        results["floors"] = _statistic_floors(target, target.mappings["business"])
        target.engine.dispose()
    results["ratio"] = round(results["business"]["seconds"] / results["wall_clock"]["seconds"], 3)
    return results


def table(results: dict[str, Any]) -> str:
    floors = results["floors"]
    wall, business = results["wall_clock"], results["business"]
    return "\n".join(
        [
            f"## Business hours against the wall clock: one response-time KR, full compute, SQLite"
            f" ({results['activities']:,} activities, {floors['inquiries']:,} inquiries, best of {results['rounds']})",
            "",
            "| clock | full compute s | value | floor: evidence SQL s | floor: statistic s |",
            "|---|---:|---:|---:|---:|",
            f"| wall clock | {wall['seconds']} | {wall['value']} | {wall['evidence_sql_seconds']} |"
            f" {floors['statistic_wall_seconds']} |",
            f"| business hours (Berlin) | {business['seconds']} | {business['value']} |"
            f" {business['evidence_sql_seconds']} | {floors['statistic_business_seconds']} |",
            "",
            f"business ÷ wall clock: {results['ratio']}× (commit {results['commit']})",
        ]
    )
