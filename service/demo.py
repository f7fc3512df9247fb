"""``okrsync demo``: the whole loop on loopback in one command, with no account, server or Docker.

It starts the sandbox CRM (a Salesforce org and a HubSpot portal telling the same sales quarter, generated up to
now), syncs both into a SQLite file of its own (``<data_dir>/demo/okrsync.db``; the user's database is never
touched), applies the example mappings moved to the current quarter, computes and writes back, prints the
check-in report, starts the sidecar with its worker, and then plays a rep who logs a meeting every few seconds:
the CRM's webhook reaches the sidecar, the worker refreshes, and the key result moves on the dashboard.

Each step prints one line (what it did, how long it took); a step that fails says which and why, stops whatever
was started and exits non-zero.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import Engine
from sqlmodel import Session

import mappings
from connectors.registry import BUILT_IN, adapter
from service.crm.clients import CrmAccess, open_crm
from service.kit.db import make_engine, utcnow
from service.kit.migrate import create_schema
from service.kit.settings import Settings, WebhookSettings, get_settings
from service.notifications.settings import NotificationSettings

out = Console() if Console().is_terminal else Console(width=160)
err = Console(stderr=True)

EXAMPLES_DIR = Path(mappings.__file__).parent / "examples"
# the example files tell Q3 2026; the demo moves them to the current quarter
EXAMPLES_QUARTER = (date(2026, 7, 1), "Q3 2026")
SMALL = {"accounts": 80, "opportunities": 200, "activities": 3_000}


class Size(StrEnum):
    small = "small"
    default = "default"


class StepFailed(Exception):
    """A step of the demo failed; the message names the step and the cause."""


# -- the example mappings, moved to the current quarter ----------------------------------------------------------
def quarter_of(day: date) -> tuple[date, date, str]:
    """First day, last day and name ("Q4 2026") of the calendar quarter holding ``day``."""
    first = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    following = date(first.year + 1, 1, 1) if first.month == 10 else date(first.year, first.month + 3, 1)
    return first, following - timedelta(days=1), f"Q{(first.month - 1) // 3 + 1} {first.year}"


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def move_to_quarter(config: dict[str, Any], *, today: date) -> dict[str, Any]:
    """The mapping file's data with its cycle on the quarter holding ``today`` and its sprints moved by the same
    number of days (a sprint that would leave the cycle is dropped, with the key results measured over it)."""
    first, last, name = quarter_of(today)
    shift = first - EXAMPLES_QUARTER[0]
    moved = {**config, "cycle": {**config["cycle"], "start": first, "end": last}}
    moved["cycle"]["name"] = str(config["cycle"]["name"]).replace(EXAMPLES_QUARTER[1], name)
    sprints = []
    for sprint in config.get("sprints") or []:
        start, end = _day(sprint["start"]) + shift, _day(sprint["end"]) + shift
        if first <= start and end <= last:
            sprints.append({**sprint, "start": start, "end": end})
    kept = {sprint["key"] for sprint in sprints}
    if "sprints" in config:
        moved["sprints"] = sprints
    moved["objectives"] = [
        {**objective, "key_results": [
            kr for kr in objective["key_results"]
            if not isinstance(kr.get("window"), dict) or kr["window"].get("sprint") in kept
        ]}
        for objective in config["objectives"]
    ]  # fmt: skip
    return moved


def write_moved_examples(folder: Path, *, today: date) -> dict[str, Path]:
    """The example files moved to the current quarter, written to ``folder`` (name -> path)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in sorted({name for crm in BUILT_IN for name in adapter(crm).sandbox_examples}):
        source = EXAMPLES_DIR / f"{name}.yaml"
        moved = move_to_quarter(yaml.safe_load(source.read_text(encoding="utf-8")), today=today)
        header = (
            f"# okrsync demo: {source.name} from mappings/examples with its dates moved to {quarter_of(today)[2]}"
            " (the comments are in the original)\n"
        )
        path = folder / source.name
        path.write_text(header + yaml.safe_dump(moved, sort_keys=False, allow_unicode=True, width=120), "utf-8")
        written[name] = path
    return written


# -- steps -------------------------------------------------------------------------------------------------------
def _say(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def step(name: str) -> Iterator[list[str]]:
    """Run one step: the body appends what it did; prints "✔ name: what (seconds)" or raises StepFailed."""
    done: list[str] = []
    started = time.perf_counter()
    try:
        with out.status(f"{name}…"):
            yield done
    except (StepFailed, KeyboardInterrupt, typer.Exit):
        raise
    except Exception as exc:  # noqa: BLE001 — any failure ends the demo with the step's name and the cause
        raise StepFailed(f"{name} failed: {type(exc).__name__}: {exc}") from exc
    _say(f"✔ {name}: {'; '.join(done)} ({time.perf_counter() - started:.1f} s)")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def reserve_port(port: int, host: str = "127.0.0.1") -> socket.socket | None:
    """A socket bound to ``port`` (0: a free one) for the sidecar to serve on later, or None when it is taken."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
    try:
        sock.bind((host, port))
        sock.listen()  # listening, it is ours alone; callers wait in the backlog until the sidecar answers
    except OSError:
        sock.close()
        return None
    return sock


def demo_settings(base: Settings, *, folder: Path, size: Size, port: int) -> Settings:
    """The demo's own settings: its folder and SQLite file, the sandbox anchored now (kept with --keep), the
    sandbox's demo webhook secrets, no team-chat notifications and none of the user's CRM settings."""
    from service.sidecar import SANDBOX_FLOW_SECRET, SANDBOX_HUBSPOT_CLIENT_SECRET

    sandbox = base.sandbox.model_copy(update={"anchor": None, **(SMALL if size is Size.small else {})})
    webhooks = WebhookSettings(
        public_base_url=f"http://127.0.0.1:{port}",
        hubspot_client_secret=SecretStr(SANDBOX_HUBSPOT_CLIENT_SECRET),
        flow_secret=SecretStr(SANDBOX_FLOW_SECRET),
        max_body_bytes=base.webhooks.max_body_bytes,
    )
    return base.model_copy(
        update={
            "data_dir": folder, "database_url": None, "sandbox": sandbox, "webhooks": webhooks,
            "notifications": NotificationSettings(), **dict.fromkeys(BUILT_IN),  # none of the user's CRM settings
        }
    )  # fmt: skip


@dataclass
class Applied:
    ids: dict[tuple[str, str], int]  # (crm, example) -> mapping id
    key_results: int
    first: date
    last: date
    quarter: str


def _titles(crms: dict[str, CrmAccess]) -> str:
    """ "Salesforce and HubSpot": the CRMs' titles, listed."""
    titles = [access.adapter.title for access in crms.values()]
    return ", ".join(titles[:-1]) + f" and {titles[-1]}" if len(titles) > 1 else titles[0]


def _sync(engine: Engine, access: CrmAccess, *, full: bool) -> str:
    from service.sync.service import run_sync

    report = run_sync(engine, access.connector(), connection_name=access.connection_name, full=full)
    if report.error:
        raise StepFailed(f"sync {access.crm} failed: {report.error}")
    records = sum(c.written for c in report.counts.values())
    streams = ", ".join(f"{name} {c.written:,}" for name, c in report.counts.items())
    deleted = sum(c.deleted for c in report.counts.values())
    return f"{records:,} records ({streams}){f', {deleted} deleted' if deleted else ''}, {report.api_calls} API calls"


def history_moments(first_day: date, now: datetime) -> list[datetime]:
    """When the demo computes the elapsed part of the cycle, so that charts have a line and "change in 7 days" a
    value: every 7th day from the cycle's start and each of the last 8 days, at 18:00 UTC, before ``now``."""
    days = {first_day + timedelta(days=7 * k) for k in range(0, 53)}
    days |= {now.date() - timedelta(days=k) for k in range(1, 9)}
    moments = (datetime(day.year, day.month, day.day, 18, tzinfo=UTC) for day in days if first_day <= day < now.date())
    return sorted(moment for moment in moments if moment < now)


def _apply(engine: Engine, settings: Settings, files: dict[str, Path], *, now: datetime, keep: bool) -> Applied:
    from service.compute.service import compute
    from service.okrs import service as okrs
    from service.writeback import repository as outbox
    from service.writeback.service import stage_connection

    ids: dict[tuple[str, str], int] = {}
    computed = 0
    with Session(engine) as session:
        for crm in BUILT_IN:
            connection = okrs.resolve_connection(session, f"{crm}/sandbox")
            assert connection.id is not None
            if keep:  # the sandbox CRM started empty of okrsync's records again: write everything anew
                outbox.forget_written(session, connection_id=connection.id)
            for example in adapter(crm).sandbox_examples:
                loaded = okrs.load_path(files[example])
                mapping, _version = okrs.apply(
                    session, loaded, connection=connection, author="okrsync demo", reason="okrsync demo", now=now
                )
                if not keep:  # the elapsed part of the quarter, as the team would have seen it day by day
                    for moment in history_moments(mapping.cycle_start, now):
                        compute(session, mapping=mapping, as_of=moment)
                computed += len(compute(session, mapping=mapping, as_of=now).recomputed)
                assert mapping.id is not None
                ids[(crm, example)] = mapping.id
            stage_connection(session, connection=connection, settings=settings, as_of=now)
        session.commit()
    first, last, quarter = quarter_of(now.date())
    return Applied(ids, computed, first, last, quarter)


def _write_back(engine: Engine, access: CrmAccess) -> str:
    from service.okrs import service as okrs
    from service.writeback.service import send

    with Session(engine) as session:
        connection_id = okrs.resolve_connection(session, f"{access.crm}/sandbox").id or 0
    report = send(engine, access.writer(), connection_id=connection_id)
    if report.stopped:
        raise StepFailed(f"write-back to {access.crm} stopped: {report.stopped}")
    problems = f", {len(report.problems)} refused (okrsync writeback --status)" if report.problems else ""
    return f"{report.written:,} records written with {report.api_calls} API calls{problems}"


def _print_report(engine: Engine, mapping_id: int) -> None:
    from service.okrs.commands import _print_report as print_check_in
    from service.okrs.models import OkrMapping

    with Session(engine) as session:
        mapping = session.get(OkrMapping, mapping_id)
        assert mapping is not None
        out.print()
        print_check_in(session, mapping, console=out)
        out.print()


DEMO_REP = ("Mia Vogel", "mia.vogel@sandbox.okrsync.dev")  # an account executive of the acquisition team
DEMO_KAM = ("Katrin Lindqvist", "katrin.lindqvist@sandbox.okrsync.dev")  # owns some of the key accounts


def _token(engine: Engine) -> str:
    from service.kit.auth import Role, create_token

    with Session(engine) as session:
        _row, token = create_token(session, name="demo", role=Role.sales_ops)
        session.commit()
    return token


def _people_tokens(engine: Engine) -> dict[str, str]:
    """A rep's and a KAM's token, each with the CRM e-mail that makes the dashboard show them their own work."""
    from service.kit.auth import Role, create_token

    with Session(engine) as session:
        tokens = {
            "rep": create_token(session, name=DEMO_REP[0], role=Role.rep, email=DEMO_REP[1])[1],
            "kam": create_token(session, name=DEMO_KAM[0], role=Role.kam, email=DEMO_KAM[1])[1],
        }
        session.commit()
    return tokens


def _has_dashboard(base_url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base_url}/dashboard/login", timeout=5).status_code != 404
    except httpx.HTTPError:
        return False


# -- the command -------------------------------------------------------------------------------------------------
def demo(
    port: Annotated[
        int | None, typer.Option(help="The sidecar's port on 127.0.0.1 (default OKRSYNC_SERVE__PORT, 8080; 0: free).")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop this many seconds after the sidecar is up (default: run until Ctrl-C).", min=0),
    ] = None,
    every: Annotated[float, typer.Option(help="The simulated rep logs an activity this often (seconds).", min=0.1)] = 5,
    fresh: Annotated[
        bool, typer.Option("--fresh/--keep", help="Start from an empty demo database, or keep the last demo's.")
    ] = True,
    size: Annotated[
        Size,
        typer.Option(
            help="Sandbox size: small (80 accounts, 200 opportunities, 3,000 activities: quick) or"
            " default (OKRSYNC_SANDBOX__*, or 400, 1,000 and 20,000: about a minute)."
        ),
    ] = Size.small,
) -> None:
    """The whole loop on 127.0.0.1, with no account, server or Docker: the sandbox CRM (Salesforce and HubSpot),
    syncs into a SQLite file of the demo's own (<data dir>/demo), the example OKRs moved to this quarter, computed
    and written back, the check-in report, then the sidecar and its dashboard while a simulated rep logs meetings
    and the key results move live. Ctrl-C stops it."""
    base = get_settings()
    logging.basicConfig(level="DEBUG" if base.log_level.upper() == "DEBUG" else "WARNING")
    port = port if port is not None else base.serve.port
    # the port is held from now on: nobody can take it while the steps run, and a busy one is refused at once
    sock = reserve_port(port)
    if sock is None:
        err.print(
            f"[red]port {port} on 127.0.0.1 is in use[/] (another okrsync serve or demo?): choose another with"
            f" --port {port + 1 if port < 65535 else 8081}, or --port 0 for a free one",
            highlight=False,
        )
        raise typer.Exit(2)
    port = sock.getsockname()[1]
    folder = base.data_dir / "demo"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(base, folder=folder, size=size, port=port)
    _say(
        f"okrsync demo — in {folder} ({'a fresh' if fresh else 'the kept'} demo database; your own"
        f" {base.data_dir / 'okrsync.db'} is not touched), everything on 127.0.0.1"
    )
    stopping = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the demo as cleanly as Ctrl-C
    try:
        with ExitStack() as stack:
            stack.callback(sock.close)
            _run(stack, settings, sock=sock, keep=not fresh, duration=duration, every=every)
    except StepFailed as exc:
        err.print(f"[red]✘ {escape(str(exc))}[/]", highlight=False, soft_wrap=True)
        err.print("everything the demo started is stopped", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, stopping)
    _say(
        f"stopped: sidecar, worker and sandbox CRM. The demo's data stays in {folder} until the next `okrsync demo`"
        f" (look at it with OKRSYNC_DATA_DIR={folder} okrsync report --mapping 1)"
    )


def _run(
    stack: ExitStack, settings: Settings, *, sock: socket.socket, keep: bool, duration: float | None, every: float
) -> None:
    from service.app import create_app
    from service.demo_rep import simulate_rep
    from service.kit.server import ThreadedServer

    now = utcnow()
    with step("database") as done:
        engine = make_engine(settings.effective_database_url)
        create_schema(engine)
        done.append(f"SQLite {settings.effective_database_url.removeprefix('sqlite:///')}")
    with step("sandbox CRM") as done:
        first, *others = BUILT_IN  # the first starts the sandbox server, the others reach it there
        crms = {first: open_crm(stack, first, settings, use_sandbox=True)}
        server = crms[first].sandbox
        crms.update({crm: open_crm(stack, crm, settings, sandbox_url=server.base_url) for crm in others})
        org = server.org
        # the quarter ends at the sandbox's anchor: now, or with --keep the first demo's time (kept by the sandbox)
        anchor = datetime.fromisoformat(json.loads((settings.data_dir / "sandbox" / "org.json").read_text())["anchor"])
        done.append(
            f"{_titles(crms)} on {server.base_url} — {len(org.records('Account')):,} accounts,"
            f" {len(org.records('Opportunity')):,} opportunities,"
            f" {len(org.records('Task')) + len(org.records('Event')):,} activities up to {anchor:%Y-%m-%d %H:%M} UTC"
        )
    for access in crms.values():
        with step(f"sync {access.adapter.title}") as done:
            done.append(_sync(engine, access, full=keep))
    for access in crms.values():
        if access.adapter.provision_hint is None:  # okrsync's objects and fields are created through the API
            with step(f"provision {access.adapter.title}") as done:
                provisioned = access.adapter.provision(access.config)
                if provisioned.problems:
                    raise StepFailed(f"provision {access.adapter.title} failed: {'; '.join(provisioned.problems)}")
                done.append(
                    f"{provisioned.what} in the sandbox ({len(provisioned.created)} created,"
                    f" {len(provisioned.present)} present)"
                )
    with step("OKRs") as done:
        files = write_moved_examples(settings.data_dir / "mappings", today=now.date())
        applied = _apply(engine, settings, files, now=now, keep=keep)
        shift = (applied.first - EXAMPLES_QUARTER[0]).days
        listed = "; ".join(
            f"{adapter(crm).title}: "
            + ", ".join(f"{ex} ({mapping_id})" for (c, ex), mapping_id in applied.ids.items() if c == crm)
            for crm in crms
        )
        done.append(
            f"the examples moved to {applied.quarter} ({applied.first} – {applied.last}, dates {shift:+d} days)"
            f" applied, {applied.key_results} key results computed as of now: {listed}"
        )
    for access in crms.values():
        with step(f"write-back {access.adapter.title}") as done:
            done.append(_write_back(engine, access))
    report_id = applied.ids[(first, "acquisition")]
    _say(
        f"check-in report of mapping {report_id} (acquisition on {adapter(first).title}),"
        " as `okrsync report` prints it:"
    )
    try:
        _print_report(engine, report_id)
    except Exception as exc:  # noqa: BLE001 — said as the failing step, then everything stops
        raise StepFailed(f"check-in report failed: {type(exc).__name__}: {exc}") from exc
    with step("sidecar") as done:
        token = _token(engine)
        app = create_app(settings=settings, engine=engine, crms=crms, worker=True)
        for crm in crms:  # just synced: no periodic sync right away
            app.state.worker.last_sync[crm] = time.monotonic()
        http = stack.enter_context(ThreadedServer(app, sock=sock))
        done.append(f"API and worker on {http.base_url} (API docs: {http.base_url}/docs)")
    if _has_dashboard(http.base_url):
        _say(f"dashboard: {http.base_url}/dashboard — log in on {http.base_url}/dashboard/login with the token")
    _say(f"API: {http.base_url}/api/v1/mappings (Authorization: Bearer <token>), docs on {http.base_url}/docs")
    _say(f"token (sales_ops, named demo; it opens only this local demo database): {token}")
    people = _people_tokens(engine)
    _say(f"token (rep {DEMO_REP[0]}, {DEMO_REP[1]}: her own work first, 'You' in the lists): {people['rep']}")
    _say(f"token (kam {DEMO_KAM[0]}, {DEMO_KAM[1]}: assesses her key accounts): {people['kam']}")
    _say(
        f"more people: OKRSYNC_DATA_DIR={settings.data_dir} okrsync token create --name 'Greta Lang' --role rep"
        " --email greta.lang@sandbox.okrsync.dev (any member's CRM e-mail; roles: viewer, rep, kam, sales_ops)"
    )
    _say(
        f"a simulated rep now logs a meeting every {every:g} s, in turn in {_titles(crms)}, and the CRM's"
        f" webhook tells the sidecar; {'Ctrl-C stops' if duration is None else f'stopping after {duration:g} s'}"
    )
    try:
        simulate_rep(
            base_url=http.base_url, token=token, engine=engine, sandbox=server, settings=settings,
            mappings={crm: applied.ids[(crm, "acquisition")] for crm in crms}, every=every, duration=duration,
            say=_say,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 — said as the failing step, then everything stops
        raise StepFailed(f"simulated rep failed: {type(exc).__name__}: {exc}") from exc


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
