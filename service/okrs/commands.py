"""``okrsync mappings …``, ``compute``, ``report``, ``explain``, ``kr set``, ``kam assess`` and ``export``."""

from __future__ import annotations

import getpass
import math
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mappings.config import WAIT_METRICS
from mappings.scan import scan_warnings
from mappings.source import MappingFileError
from mappings.validate import json_schema, located
from service.compute import report as reports
from service.compute import report_formats
from service.compute.service import changes_since_last
from service.compute.service import compute as compute_mapping
from service.crm.models import CrmConnection
from service.kit.db import make_engine, utcnow
from service.kit.migrate import create_schema
from service.kit.settings import get_settings
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.writeback.service import stage_connection

mappings_app = typer.Typer(help="Validate, preview and apply the sales-ops mapping file.", no_args_is_help=True)
kr_app = typer.Typer(help="Key results entered by hand.", no_args_is_help=True)
kam_app = typer.Typer(help="Key-account criteria assessed by the KAM.", no_args_is_help=True)
export_app = typer.Typer(help="Results as CSV for other systems.", no_args_is_help=True)
# a report piped to a file or read in CI should not wrap every title: 160 columns unless a terminal says otherwise
out = Console() if Console().is_terminal else Console(width=160)
err = Console(stderr=True)

FileArg = Annotated[Path, typer.Argument(help="The mapping file (YAML).")]
ConnectionOpt = Annotated[
    str | None, typer.Option("--connection", help="CRM connection as crm/name, e.g. salesforce/sandbox.")
]
AsOfOpt = Annotated[
    datetime | None,
    typer.Option(
        "--as-of",
        help="Compute as of this time (UTC; default now).",
        formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
    ),
]
MappingOpt = Annotated[str | None, typer.Option("--mapping", help="'team / cycle', cycle or id (default: latest).")]
AuthorOpt = Annotated[str | None, typer.Option("--author", help="Who makes the change (default: your login).")]


def _engine() -> Engine:
    engine = make_engine(get_settings().effective_database_url)
    create_schema(engine)
    return engine


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return utcnow()
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]{message}[/]")
    return typer.Exit(code)


def _load(path: Path) -> okrs.LoadedMapping:
    try:
        return okrs.load_path(path)
    except MappingFileError as exc:
        for problem in exc.problems:
            # one problem per line, never wrapped: editors and CI read "file:line:column: message"
            err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
        err.print(f"[red]{len(exc.problems)} problem(s); nothing was applied.[/]")
        raise typer.Exit(1) from None


@mappings_app.command("validate")
def validate(file: FileArg, connection: ConnectionOpt = None) -> None:
    """Check the file: syntax, schema, references, and (when CRM data is synced) members and CRM fields."""
    loaded = _load(file)
    with Session(_engine()) as session:
        try:
            conn: CrmConnection | None = okrs.resolve_connection(session, connection)
        except okrs.NotFoundError as exc:
            if connection is not None:
                raise _fail(str(exc)) from None
            conn = None
            err.print(f"[yellow]not checked against CRM data:[/] {exc}")
        if conn is not None:
            problems = okrs.check_against_crm(session, loaded, conn)
        else:  # no CRM data yet: the company goals the objectives serve are still checked
            problems = located(okrs.check_goals(session, loaded.config), loaded.locator, filename=str(file))
    for problem in problems:
        err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
    if problems:
        raise _fail(f"{len(problems)} problem(s)")
    config = loaded.config
    # warnings, not problems: the file is valid and computes correctly, only slowly at scale
    for warning in located(scan_warnings(config), loaded.locator, filename=str(file)):
        where = "".join(f":{part}" for part in (warning.line, warning.column) if part is not None)
        err.print(f"{warning.file}{where}: warning: {warning.message}", markup=False, highlight=False, soft_wrap=True)
    count = len(config.key_results())
    out.print(
        f"{file}: valid — {len(config.objectives)} objective(s), {count} key result(s), "
        f"{len(config.hygiene.rules)} hygiene rule(s), {len(config.kam.criteria) if config.kam else 0} KAM criteria"
    )


@mappings_app.command("schema")
def schema() -> None:
    """Print the mapping file's JSON Schema (for editors: yaml-language-server)."""
    print(json_schema())


@mappings_app.command("apply")
def apply(
    file: FileArg,
    connection: ConnectionOpt = None,
    author: AuthorOpt = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (required within a running cycle).")] = None,
    as_of: AsOfOpt = None,
) -> None:
    """Store the file as the next version of its mapping (team + cycle), then compute it."""
    loaded = _load(file)
    with Session(_engine()) as session:
        try:
            conn = okrs.resolve_connection(session, connection)
            mapping, version = okrs.apply(
                session, loaded, connection=conn, author=author or getpass.getuser(), reason=reason, now=_utc(as_of)
            )
        except MappingFileError as exc:
            for problem in exc.problems:
                err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
            raise _fail("nothing was applied") from None
        except (okrs.NotFoundError, okrs.CycleRuleError) as exc:
            raise _fail(f"{exc}; nothing was applied") from None
        if version is None:
            out.print(f"{mapping.team} / {mapping.cycle}: unchanged (version {mapping.current_version})")
        else:
            out.print(f"{mapping.team} / {mapping.cycle}: version {version.version} — {', '.join(version.changes)}")
        result = compute_mapping(session, mapping=mapping, as_of=_utc(as_of))
        _stage(session, [mapping], as_of=_utc(as_of))
        session.commit()
    out.print(f"computed {len(result.recomputed)} key result(s) in {result.seconds:.2f} s")


@mappings_app.command("preview")
def preview(file: FileArg, connection: ConnectionOpt = None, as_of: AsOfOpt = None) -> None:
    """Show the values the file would give now, without storing anything."""
    loaded = _load(file)
    with Session(_engine()) as session:
        try:
            conn = okrs.resolve_connection(session, connection)
            mapping, _version = okrs.apply(
                session, loaded, connection=conn, author="preview", reason="preview", now=_utc(as_of)
            )
        except MappingFileError as exc:
            for problem in exc.problems:
                err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
            raise _fail("cannot preview") from None
        except (okrs.NotFoundError, okrs.CycleRuleError) as exc:
            raise _fail(str(exc)) from None
        compute_mapping(session, mapping=mapping, as_of=_utc(as_of))
        _print_report(session, mapping)
        session.rollback()  # a preview stores nothing
    err.print("[dim]preview only: nothing was stored[/]")


@mappings_app.command("history")
def history(mapping: MappingOpt = None) -> None:
    """Every applied version with who, when, why and what changed."""
    with Session(_engine()) as session:
        m = _mapping(session, mapping)
        for v in okrs.versions(session, m):
            out.print(
                f"v{v.version}  {v.applied_at:%Y-%m-%d %H:%M}  {v.author}  {v.reason or ''}  [{'; '.join(v.changes)}]"
            )


def _stage(session: Session, mappings: list[OkrMapping], *, as_of: datetime | None = None) -> None:
    """Stage the new results for write-back in the computation's transaction (``okrsync writeback`` sends)."""
    settings = get_settings()
    for connection_id in sorted({m.connection_id for m in mappings}):
        connection = session.get(CrmConnection, connection_id)
        if connection is not None:
            stage_connection(session, connection=connection, settings=settings, as_of=as_of)


def _mapping(session: Session, name: str | None) -> OkrMapping:
    try:
        return okrs.find_mapping(session, name)
    except okrs.NotFoundError as exc:
        raise _fail(str(exc)) from None


def compute(
    mapping: MappingOpt = None,
    as_of: AsOfOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Recompute everything, not only what syncs changed.")] = False,
) -> None:
    """Recompute key results, hygiene findings and KAM criteria of the applied mappings.

    By default only what the syncs changed since the last computation (the same day and mapping version)."""
    engine = _engine()
    results = []
    with Session(engine) as session:
        targets = [_mapping(session, mapping)] if mapping else okrs.mappings(session)
        if not targets:
            raise _fail("no mapping applied yet: run `okrsync mappings apply FILE`")
        for m in targets:
            changes = None if full else changes_since_last(session, m)
            result = compute_mapping(session, mapping=m, as_of=_utc(as_of), changes=changes)
            results.append(result)
            out.print(
                f"{m.team} / {m.cycle}: {result.kind}, {len(result.recomputed)} key result(s) recomputed"
                f" in {result.seconds:.2f} s"
            )
        _stage(session, targets, as_of=_utc(as_of))
        session.commit()


class ReportFormat(StrEnum):
    text = "text"
    md = "md"
    csv = "csv"
    html = "html"


class Language(StrEnum):
    en = "en"
    de = "de"


OutputOpt = Annotated[
    Path | None, typer.Option("--output", dir_okay=False, help="Write to this file instead of standard output.")
]


def report(
    mapping: MappingOpt = None,
    format_: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="text: the terminal table; md: the weekly check-in as Markdown; csv: one row per key result; "
            "html: the dashboard's check-in page as one document.",
        ),
    ] = ReportFormat.text,
    output: OutputOpt = None,
    lang: Annotated[Language, typer.Option("--lang", help="Language of the md and html labels.")] = Language.en,
) -> None:
    """Objectives, key results, progress, status, each member's contribution, hygiene and KAM summary."""
    with Session(_engine()) as session:
        m = _mapping(session, mapping)
        if format_ is ReportFormat.text:
            if output is None:
                _print_report(session, m)
                return
            with _open(output) as file:
                _print_report(session, m, console=Console(file=file, width=160))
            err.print(f"report written to {output}", highlight=False)
            return
        if format_ is ReportFormat.html:
            # the dashboard renders its own page: loaded only when asked for, the terminal formats don't need it
            from service.dashboard.service import render_check_in

            text = render_check_in(session, m, lang=lang.value, standalone=True)
        else:
            weekly = report_formats.gather(session, m, lang=lang.value)
            if format_ is ReportFormat.md:
                text = report_formats.render_markdown(weekly, lang=lang.value)
            else:
                text = report_formats.render_csv(weekly)
    _write(text, output)


def _open(path: Path) -> TextIO:
    try:
        return path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise _fail(f"cannot write {path}: {exc.strerror}") from None


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    with _open(output) as file:
        file.write(text)
    err.print(f"written to {output}", highlight=False)


@export_app.command("attainment")
def export_attainment(
    team: Annotated[str | None, typer.Option("--team", help="Only this team's mappings (default: all).")] = None,
    connection: ConnectionOpt = None,
    output: OutputOpt = None,
) -> None:
    """Key-result attainment per cycle as CSV, for team-based incentive schemes.

    One row per key result of every mapping (team + cycle + connection), all cycles, by cycle start: weight,
    baseline, target, final (closed cycle) or current value, progress, grade, achieved, objective achieved."""
    with Session(_engine()) as session:
        try:
            conn = okrs.resolve_connection(session, connection) if connection else None
            rows = report_formats.attainment(session, team=team, connection=conn)
        except okrs.NotFoundError as exc:
            raise _fail(str(exc)) from None
    _write(report_formats.render_attainment_csv(rows), output)


STATUS_STYLE = {"on_track": "green", "at_risk": "yellow", "off_track": "red"}


def _print_report(session: Session, mapping: OkrMapping, *, console: Console = out) -> None:
    data = reports.check_in(session, mapping)
    when = f" — as of {data.as_of:%Y-%m-%d %H:%M} UTC" if data.as_of else ""
    console.print(f"[bold]{data.team} — {data.cycle}[/] ({data.start} to {data.end}){when}")
    for objective in data.objectives:
        mark = " ✔ achieved" if objective.achieved else ""
        console.print(f"\n[bold]{objective.title}[/]  {objective.progress:.0%}  {objective.status}{mark}")
        table = Table(show_edge=False)
        for column in ("Key result", "Value", "Target", "Progress", "Grade", "Expected", "Status", "Top contributors"):
            table.add_column(column)
        for kr in objective.key_results:
            top = ", ".join(f"{name} {value}" for name, value in kr.contributions[:3])
            table.add_row(
                kr.title,
                kr.shown,
                kr.target,
                "–" if kr.progress is None else f"{kr.progress:.0%}",
                "–" if kr.grade is None else f"{kr.grade:.1f}",
                f"{kr.expected:.0%}",
                f"[{STATUS_STYLE.get(kr.status, 'white')}]{kr.status}[/]",
                top,
            )
        console.print(table)
    if data.hygiene_rules:
        score = "–" if data.hygiene_score is None else f"{data.hygiene_score:.0%}"
        console.print(f"\n[bold]Pipeline hygiene[/]: {score} of {data.hygiene_open} open opportunities pass every rule")
        console.print("  " + ", ".join(f"{rule} {count}" for rule, count in data.hygiene_rules))
        for line in data.worst_opportunities[:5]:
            console.print(f"  {line.opportunity_id} ({line.owner}): " + "; ".join(line.problems))
    if data.kam_accounts:
        met = sum(1 for _n, _o, s in data.kam_accounts if s is not None and s >= 1)
        console.print(
            f"\n[bold]Key accounts[/]: {met} of {len(data.kam_accounts)} meet all criteria"
            " (criteria not assessed yet are left out of an account's score)"
        )


def explain(
    kr: Annotated[str, typer.Argument(help="Key result key.")],
    mapping: MappingOpt = None,
    limit: Annotated[int, typer.Option(help="Records to show.")] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
) -> None:
    """The CRM records behind a key result's value (for a ratio its parts, for a response time the pairs)."""
    with Session(_engine()) as session:
        m = _mapping(session, mapping)
        config = okrs.current_config(session, m)
        try:
            metric = config.key_result(kr).metric
        except KeyError:
            keys = ", ".join(k.key for _o, k in config.key_results())
            raise _fail(f"no key result {kr!r} (key results: {keys})") from None
        names = reports.owner_names(session, m.connection_id)
        if metric.type == "hygiene_score":  # its evidence is the hygiene findings
            lines = reports.hygiene_by_opportunity(session, m, config, names=names)
            out.print(f"{kr}: {len(lines)} open opportunit(ies) with findings; showing {min(limit, len(lines))}")
            for line in lines[offset : offset + limit]:
                out.print(f"  {line.opportunity_id} ({line.owner}): " + "; ".join(line.problems))
            return
        if metric.type == "kam_criteria":  # its evidence is the key accounts' criteria
            results = reports.kam_criteria(session, m)
            out.print(f"{kr}: {len(results)} criterion result(s) on key accounts")
            for c in results[offset : offset + limit]:
                shown = f" measured={c.measured}" if c.measured is not None else f" by {c.assessed_by or '–'}"
                out.print(f"  {c.account_id} {c.criterion_key}: {c.status}{shown}")
            return
        total, rows = reports.evidence(session, m, kr, limit=limit, offset=offset)
        out.print(f"{kr}: {total} record(s) counted; showing {len(rows)}")
        for row in rows:
            related = f" → {row.related_id}" if row.related_id else ""
            when = f"{row.occurred_at:%Y-%m-%d %H:%M}" if row.occurred_at else ""
            if isinstance(metric, WAIT_METRICS):  # response_time and speed_to_lead: waits in hours
                value = _wait(row.value, reports.business_wait(config, metric, row.occurred_at, row.value))
            else:
                value = "" if row.value in (None, 1.0) else f" value={row.value:g}"
            out.print(f"  {row.part:<11} {row.record_id}{related}  {when}  {names.get(row.owner_id or '', '')}{value}")


def _wait(seconds: float | None, business: float | None) -> str:
    """“ waited 62.75 h (0.75 business h)”: the wall-clock wait of an inquiry and, for a key result measured in
    business hours, the same wait in the team's open hours."""
    if seconds is None:
        return " not answered yet"
    return f" waited {seconds / 3600:.2f} h" + (f" ({business / 3600:.2f} business h)" if business is not None else "")


@kr_app.command("set")
def kr_set(
    kr: Annotated[str, typer.Argument(help="Key result key (a manual one).")],
    value: Annotated[float, typer.Argument(help="The value.")],
    mapping: MappingOpt = None,
    author: AuthorOpt = None,
    note: Annotated[str | None, typer.Option(help="Where the number comes from.")] = None,
) -> None:
    """Enter the value of a manual key result (e.g. at the weekly check-in)."""
    if not math.isfinite(value) or abs(value) > 1e15:  # typer reads "nan", "inf" and 1e309 as floats
        err.print(f"[red]{value} is not a value:[/] a finite number within ±10¹⁵; nothing was stored")
        raise typer.Exit(2)
    with Session(_engine()) as session:
        m = _mapping(session, mapping)
        try:
            okrs.set_manual_value(
                session, m, kr_key=kr, value=value, author=author or getpass.getuser(), note=note, at=utcnow()
            )
        except (okrs.NotFoundError, okrs.CycleRuleError, okrs.ManualValueError) as exc:
            raise _fail(str(exc)) from None
        compute_mapping(session, mapping=m)
        _stage(session, [m])
        session.commit()
    out.print(f"{kr} = {value:g} recorded")


@kam_app.command("assess")
def kam_assess(
    account: Annotated[str, typer.Argument(help="CRM account id.")],
    criterion: Annotated[str, typer.Argument(help="Criterion key (an assessed one).")],
    status: Annotated[str, typer.Argument(help="met | partly | not_met")],
    mapping: MappingOpt = None,
    author: AuthorOpt = None,
    comment: Annotated[str | None, typer.Option(help="Why.")] = None,
    evidence: Annotated[str | None, typer.Option(help="Link to the evidence.")] = None,
) -> None:
    """Record the KAM's assessment of a qualitative criterion on a key account."""
    with Session(_engine()) as session:
        m = _mapping(session, mapping)
        try:
            okrs.assess(
                session,
                m,
                account_id=account,
                criterion_key=criterion,
                status=status,
                author=author or getpass.getuser(),
                comment=comment,
                evidence_url=evidence,
                at=utcnow(),
            )
        except (okrs.NotFoundError, okrs.CycleRuleError, ValueError) as exc:
            raise _fail(str(exc)) from None
        compute_mapping(session, mapping=m)
        _stage(session, [m])
        session.commit()
    out.print(f"{account} / {criterion}: {status} recorded")


def register(app: typer.Typer) -> None:
    app.add_typer(mappings_app, name="mappings")
    app.add_typer(kr_app, name="kr")
    app.add_typer(kam_app, name="kam")
    app.add_typer(export_app, name="export")
    app.command("compute")(compute)
    app.command("report")(report)
    app.command("explain")(explain)
