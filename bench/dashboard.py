"""Dashboard benchmark: server-rendered pages for a team with 50 key results and a year of history.

Setup: a sandbox org (2,000 accounts, 5,000 opportunities, 50,000 activities) synced into the database; the team
"Vertrieb DACH" has two mappings of 25 key results each (5 objectives × 5, the most a mapping allows), built from
the example metrics, with the example sprints and hygiene rules, computed once; then a year of history is
written as a computation every two hours would leave it (4,380 points per key result, 219,000 rows) plus 52
weekly check-ins. Every page is requested through the sidecar's ASGI app with a viewer token (the full stack:
auth, queries, Jinja2, SVG chart), ``rounds`` times each after one warm-up. Figures: ms per page (p50, max).
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlmodel
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlmodel import Session

from bench.ingest import _fresh_postgres
from connectors.salesforce.adapter import ADAPTER as SALESFORCE
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.app import create_app
from service.checkins.models import CheckIn
from service.compute.models import HygieneHistory, KeyResultHistory, KeyResultValue
from service.compute.repository import table as table_of
from service.compute.service import compute
from service.crm.models import CrmConnection
from service.kit.auth import Role, create_token
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.kit.settings import Settings
from service.okrs import service as okrs
from service.sync.service import run_sync

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = datetime(2026, 9, 30, 18, 0, tzinfo=UTC)
POINTS_PER_DAY = 12  # a computation every two hours


def _configs() -> list[str]:
    """Two mapping files for one team, 25 key results each, from the acquisition and hygiene examples."""
    acquisition = yaml.safe_load((ROOT / "mappings/examples/acquisition.yaml").read_text())
    hygiene = yaml.safe_load((ROOT / "mappings/examples/pipeline-hygiene.yaml").read_text())
    base_krs = [kr for o in acquisition["objectives"] for kr in o["key_results"] if "window" not in kr]
    out = []
    for name, source in (("Q3 2026", acquisition), ("Q3 2026 pipeline", hygiene)):
        config = copy.deepcopy(source)
        config["team"] = acquisition["team"]
        config["cycle"] = {**acquisition["cycle"], "name": name}
        config["hygiene"] = hygiene["hygiene"]
        config["custom_fields"] = {**acquisition.get("custom_fields", {}), **hygiene.get("custom_fields", {})}
        config["objectives"] = []
        for o in range(5):
            krs = []
            for k in range(5):
                kr = copy.deepcopy(base_krs[(o * 5 + k) % len(base_krs)])
                kr["key"] = f"kr-{o + 1}-{k + 1}"
                kr["title"] = f"{kr['title']} ({o + 1}.{k + 1})"
                krs.append(kr)
            config["objectives"].append(
                {"key": f"objective-{o + 1}", "title": f"Objective {o + 1}", "key_results": krs}
            )
        config["sprints"] = acquisition["sprints"]
        for sprint in config["sprints"]:
            sprint["serves"] = ["kr-1-1", "kr-1-2"]
        out.append(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return out


def _history(session: Session, mapping_id: int) -> int:
    """A year of points for every key result, values growing towards the stored value with some noise."""
    values = session.exec(sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == mapping_id)).all()
    start = ANCHOR - timedelta(days=365)
    rows: list[dict[str, Any]] = []
    steps = 365 * POINTS_PER_DAY
    for v in values:
        final = v.value or 1.0
        for i in range(steps):
            share = i / steps
            noise = 0.9 + 0.2 * ((i * 7919) % 100) / 100
            rows.append(
                {"mapping_id": mapping_id, "kr_key": v.kr_key, "computation_id": i,
                 "as_of": start + timedelta(hours=2 * i), "value": final * share * noise, "progress": share,
                 "grade": share, "status": "on_track" if i % 5 else "at_risk"}
            )  # fmt: skip
    history = table_of(KeyResultHistory)
    for n in range(0, len(rows), 20_000):
        session.execute(insert(history), rows[n : n + 20_000])
    hygiene = table_of(HygieneHistory)
    session.execute(
        insert(hygiene),
        [
            {"mapping_id": mapping_id, "computation_id": d, "as_of": start + timedelta(days=d), "score": 0.5 + d / 1000,
             "open_opportunities": 400, "violations": 200 - d // 3}
            for d in range(365)
        ],
    )  # fmt: skip
    for week in range(52):
        session.add(
            CheckIn(
                mapping_id=mapping_id,
                held_at=start + timedelta(days=7 * week),
                author="lead",
                attendees=["Anna Berger", "David Garcia"],
                note=f"week {week}",
                key_results={
                    v.kr_key: {"value": v.value, "status": v.status, "confidence": 7, "note": "ok"} for v in values
                },
            )  # fmt: skip
        )
    return len(rows)


def _setup(url: str, work: Path) -> tuple[Any, list[int], dict[int, list[str]], int, str]:
    engine = make_engine(url)
    create_schema(engine)
    org = SandboxOrg(generate_org(anchor=ANCHOR, seed=11, accounts=2000, opportunities=5000, activities=50_000))
    with SandboxServer(org, cert_dir=work / "cert") as server:
        run_sync(
            engine,
            SalesforceConnector(SALESFORCE.sandbox_config(server.base_url, server.ca_path or "")),
            connection_name="sandbox",
        )
    ids: list[int] = []
    krs: dict[int, list[str]] = {}
    points = 0
    with Session(engine) as session:
        connection = session.exec(sqlmodel.select(CrmConnection)).one()
        for n, text in enumerate(_configs()):
            loaded = okrs.load(text, filename=f"bench-{n}.yaml")
            mapping, _v = okrs.apply(session, loaded, connection=connection, author="bench", reason="bench", now=ANCHOR)
            compute(session, mapping=mapping, as_of=ANCHOR)
            assert mapping.id is not None
            ids.append(mapping.id)
            krs[mapping.id] = [kr.key for _o, kr in loaded.config.key_results()]
            points += _history(session, mapping.id)
        _row, token = create_token(session, name="bench", role=Role.viewer)
        session.commit()
    return engine, ids, krs, points, token


def _time(client: TestClient, path: str, headers: dict[str, str], rounds: int) -> list[float]:
    response = client.get(path, headers=headers)  # warm-up (template compilation, plan caches)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        out.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return out


def run(*, rounds: int = 5, databases: tuple[str, ...] = ("sqlite", "postgresql")) -> dict[str, Any]:
    results: dict[str, Any] = {"rounds": rounds, "key_results": 50, "runs": []}
    for database in databases:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            url = f"sqlite:///{work / 'bench.db'}" if database == "sqlite" else _fresh_postgres()
            engine, ids, krs, points, token = _setup(url, work)
            app = create_app(settings=Settings(_env_file=None), engine=engine)  # type: ignore[call-arg]
            headers = {"Authorization": f"Bearer {token}"}
            pages: dict[str, list[float]] = {}
            with TestClient(app) as client:
                for mapping_id in ids:
                    for name, path in (
                        ("overview", f"/dashboard/{mapping_id}"),
                        ("check-in", f"/dashboard/{mapping_id}/check-in"),
                        ("hygiene", f"/dashboard/{mapping_id}/hygiene"),
                        ("sprints", f"/dashboard/{mapping_id}/sprints"),
                        ("overview (de)", f"/dashboard/{mapping_id}?lang=de"),
                    ):
                        pages.setdefault(name, []).extend(_time(client, path, headers, rounds))
                    for kr in krs[mapping_id]:
                        pages.setdefault("key result + burn-up", []).extend(
                            _time(client, f"/dashboard/{mapping_id}/kr/{kr}", headers, max(1, rounds // 2))
                        )
            engine.dispose()
            results["runs"].append(
                {
                    "database": database,
                    "history_points": points,
                    "pages": {
                        name: {
                            "requests": len(ms),
                            "p50_ms": round(statistics.median(ms), 1),
                            "max_ms": round(max(ms), 1),
                        }
                        for name, ms in pages.items()
                    },  # fmt: skip
                }
            )
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"## Dashboard pages, a team with {results['key_results']} key results and a year of history"
        " (viewer token, full HTTP stack in-process)",
        "",
        "| database | history rows | page | requests | p50 (ms) | max (ms) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for run_ in results["runs"]:
        for name, p in run_["pages"].items():
            lines.append(
                f"| {run_['database']} | {run_['history_points']:,} | {name} | {p['requests']} | {p['p50_ms']}"
                f" | {p['max_ms']} |"
            )
    return "\n".join(lines)
