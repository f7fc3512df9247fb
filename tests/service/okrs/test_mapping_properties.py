"""Property: one validation path. A mapping file that `validate` accepts is a file `preview` computes; a file it
refuses is refused by `preview` too, every problem with its line; nothing else escapes; each file costs bounded time
and memory.

The files are the shipped examples (their team swapped for the members of the seeded world,
tests/service/compute/world.py, on SQLite), left alone or mutated: wrong types, unknown keys and fields, odd
unicode (NUL, RTL override, emoji, lone surrogates), huge and non-finite numbers, dates out of the calendar, filter
values of every kind, shared anchors and alias bombs, deep nesting, a file past the size limit. `validate` and
`preview` are what the CLI and the API run: ``okrs.load`` + ``check_against_crm``, and ``okrs.apply`` + compute +
the check-in report in a transaction that is rolled back.
"""

from __future__ import annotations

import copy
import faulthandler
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mappings.fields import CANONICAL, RELATIONS, RecordType
from mappings.filters import Op
from mappings.limits import MAX_FILE_BYTES
from mappings.source import MappingFileError, Problem
from service.compute import report as reports
from service.compute.service import compute
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.okrs import service as okrs
from service.sync.repository import get_or_create_connection, upsert_records
from tests.service.compute import world

EXAMPLES = Path(__file__).resolve().parents[3] / "mappings" / "examples"
MEMBERS = [{"email": "anna@example.com", "name": "Anna"}, {"email": "ben@example.com"}]
# per file and call (validate, preview), peak memory: a property bound, far above what a file takes (a few MB).
# Time is bounded by what the loader reads (mappings.limits: at most 20,000 values, nothing expanded beyond that),
# not asserted here: a timed assertion depends on the machine (bench/ measures time).
MEGABYTES = 50
HARD_STOP = 120  # seconds: beyond this one file is not slow but runaway: the run stops with every traceback
DEEP, PAD = "DEEP-NESTING-HERE", "PADDING-HERE"  # replaced in the text after dumping (too deep / large to dump)


@pytest.fixture(scope="module")
def world_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The world on SQLite, plus the opportunity field the pipeline-hygiene example declares (Segment__c)."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('properties') / 'okrsync.db'}")
    create_schema(engine)
    world.build(engine)
    with Session(engine) as session:
        connection = get_or_create_connection(session, crm_name="salesforce", name="world")
        segmented = [o.model_copy(update={"raw": {"Segment__c": "Enterprise"}}) for o in world.OPPORTUNITIES[:2]]
        upsert_records(session, segmented, connection_id=connection.id or 0, crm_object="Opportunity", seen_at=None)
        session.commit()
    yield engine
    engine.dispose()


def _examples() -> list[dict[str, Any]]:
    out = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["team"]["members"] = copy.deepcopy(MEMBERS)
        out.append(data)
    return out


BASES = _examples()


def validate(engine: Engine, text: str) -> list[Problem]:
    """`okrsync mappings validate` / POST /api/v1/mappings/validate: the problems, none if the file is valid."""
    with Session(engine) as session:
        try:
            loaded = okrs.load(text, filename="m.yaml")
        except MappingFileError as exc:
            return exc.problems
        return okrs.check_against_crm(session, loaded, okrs.resolve_connection(session, None))


def preview(engine: Engine, text: str) -> list[Problem]:
    """`okrsync mappings preview` / POST /api/v1/mappings/preview: none if it computed, else the problems."""
    with Session(engine) as session:
        try:
            loaded = okrs.load(text, filename="m.yaml")
            connection = okrs.resolve_connection(session, None)
            mapping, _version = okrs.apply(
                session, loaded, connection=connection, author="preview", reason="preview", now=world.AS_OF
            )
        except MappingFileError as exc:
            return exc.problems
        compute(session, mapping=mapping, as_of=world.AS_OF)
        reports.check_in(session, mapping)
        session.rollback()
    return []


# --- what goes into the files -----------------------------------------------------------------------------------

ODD_TEXT = ["", " ", "\x00", "a\x00b", "\x07", "\x1b[31m", "\x7f", "\x85", "\u202eevil", "\u200b", "\ufeff", "😀",
            "👩\u200d💻", "\ud800", "\udfff", "\uffff", "e\u0301", "שלום", "\u2028", "x" * 300, "notadate", "abc",
            "2026-13-01", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2026-07-01T09:30:00Z",
            "2026-07-01", "2026-07-01T09:30", "1e400", "nan", "-inf", "true", "~", "*alias", "&anchor", "!!binary",
            "<<", "a: b", "- x", "{a: 1}"]  # fmt: skip
ODD_NUMBERS = [0, 1, -1, 2, 7, 60, 0.5, 2**31, 2**53 + 1, 2**63, -(2**63) - 1, 10**15, 10**15 + 1, -(10**15) - 1,
               10**20, 10**400, -(10**400), 1e15, 1e16, 1e308, -1e308, 5e-324, -0.0, float("nan"), float("inf"),
               float("-inf")]  # fmt: skip
ODD_DATES = [date(1, 1, 1), date(1899, 12, 31), date(1900, 1, 1), date(2026, 7, 1), date(2026, 9, 30),
             date(2999, 12, 31), date(3000, 1, 1), date(9999, 12, 31)]  # fmt: skip
ODD_MOMENTS = [datetime(1, 1, 1), datetime(2026, 7, 1, 9, 30), datetime(2026, 8, 1, tzinfo=UTC),
               datetime(9999, 12, 31, 23, 59, 59)]  # fmt: skip

scalars = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),
    st.sampled_from(ODD_NUMBERS),
    st.integers(-(10**6), 10**6),
    st.floats(),
    st.booleans(),
    st.none(),
    st.sampled_from(ODD_DATES),
    st.sampled_from(ODD_MOMENTS),
    st.dates(),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=5),
    st.lists(st.lists(scalars, max_size=2), min_size=1, max_size=3),  # a list inside a list
    st.dictionaries(st.sampled_from(["a", "field", "op", "value"]), scalars, max_size=2),
    st.dictionaries(st.integers(0, 3) | st.booleans(), scalars, min_size=1, max_size=1),  # keys that are not text
    st.just(DEEP),
    st.just(PAD),
)


def _field_names() -> list[str]:
    names: set[str] = set()
    for record in (RecordType.activity, RecordType.opportunity, RecordType.account):
        names |= set(CANONICAL[record])
        for related in RELATIONS[record]:
            names |= {f"{related.value}.{name}" for name in CANONICAL[related]}
    names |= {"custom.key_account", "custom.segment", "custom.nope", "raw.Key_Account__c", "raw.Segment__c",
              "raw.Type", "raw.", "raw.a..b", 'raw.a"b', "raw.a{b}", "raw.Sub\x00ject", "raw.x\u202e", "raw.😀",
              "account.raw.Key_Account__c", "account.custom.key_account", "contact.contact.title",
              "Stage", ""}  # fmt: skip
    return sorted(names)


FIELDS = _field_names()
# a value of the right type for most fields, so that many generated filters are valid and get computed
TYPED = st.one_of(
    st.sampled_from(["call", "meeting", "email", "Prospect", "Qualification", "CEO", "inbound", "Enterprise"]),
    st.integers(-5, 100_000),
    st.floats(-1e6, 1e6),
    st.booleans(),
    st.dates(date(2025, 1, 1), date(2027, 12, 31)),
    st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.none() | st.just(UTC)),
    st.sampled_from(["2026-07-01", "2026-08-01T10:00:00Z", "2026-07-15T12:00:00+02:00"]),
)


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from([o.value for o in Op] + ["between", "", 3]))
    condition: dict[str, Any] = {"field": draw(st.sampled_from(FIELDS) | st.text(max_size=8)), "op": op}
    if draw(st.booleans()):
        one = draw(TYPED | values)
        condition["value"] = (
            draw(st.lists(TYPED, max_size=4)) if op in ("in", "not_in") and draw(st.booleans()) else one
        )
    shape = draw(st.sampled_from(["field", "field", "field", "any_of", "followed_by"]))
    if shape == "any_of":
        return {"any_of": [condition, *draw(st.lists(conditions(), max_size=2))]}
    if shape == "followed_by":
        within = draw(st.none() | st.integers(-1, 40_000) | st.sampled_from(ODD_NUMBERS))
        return {"followed_by": {"within_days": within, "where": [condition]}}
    return condition


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


NUMERIC_KEYS = {"target", "baseline", "weight", "within_hours", "within_days", "min_score", "days", "grace_days",
                "times", "min_contacts", "min", "min_count", "tolerance", "median_factor", "on_track",
                "at_risk"}  # fmt: skip
DATE_KEYS = {"start", "end"}


@st.composite
def mutated(draw: st.DrawFn, *, max_mutations: int) -> tuple[str, int, list[str]]:
    """A shipped example with up to ``max_mutations`` changes, as YAML text, how much padding replaces ``PAD`` in it
    (done by the test, so that Hypothesis never prints a 1 MB example), and what was done."""
    data = copy.deepcopy(draw(st.sampled_from(BASES)))
    done: list[str] = []
    bombs: list[tuple[Any, int]] = []  # added last: walking or printing one would expand it
    for _ in range(draw(st.integers(0, max_mutations))):
        paths = list(_paths(data))
        filters = [
            p for p in paths if p and p[-1] in ("where", "inbound", "any_of") and isinstance(_get(data, p), list)
        ]
        kind = draw(st.sampled_from(["filter", "filter", "filter", "value", "number", "date", "drop", "unknown",
                                     "date_field", "share", "bomb", "many"]))  # fmt: skip
        if kind == "filter" and filters:
            path = draw(st.sampled_from(filters))
            where = _get(data, path)
            condition = draw(conditions())
            where.insert(draw(st.integers(0, len(where))), condition)
            done.append(f"filter at {path}: {condition!r:.300}")
        elif kind == "number":
            numeric = [p for p in paths if p and p[-1] in NUMERIC_KEYS]
            if numeric:
                path = draw(st.sampled_from(numeric))
                _get(data, path[:-1])[path[-1]] = draw(st.sampled_from(ODD_NUMBERS) | st.floats() | scalars)
                done.append(f"number at {path}")
        elif kind == "date":
            dated = [p for p in paths if p and p[-1] in DATE_KEYS]
            if dated:
                path = draw(st.sampled_from(dated))
                _get(data, path[:-1])[path[-1]] = draw(st.sampled_from(ODD_DATES) | st.dates() | scalars)
                done.append(f"date at {path}")
        elif kind == "date_field":
            counted = [p for p in paths if p and p[-1] == "of"]
            if counted:
                path = draw(st.sampled_from(counted))
                field = draw(
                    st.sampled_from(["occurred_at", "created_at", "close_date", "completed_at", "none", "due"])
                )
                _get(data, path[:-1])["date_field"] = field
                done.append(f"date_field {field} at {path}")
        elif kind in ("value", "drop", "unknown"):
            path = draw(st.sampled_from(paths[1:]))
            parent, last = _get(data, path[:-1]), path[-1]
            if kind == "value":
                parent[last] = draw(values)
            elif kind == "drop":
                del parent[last]
            elif isinstance(parent, dict):
                parent[draw(st.sampled_from(["owner", "Target", "tags", "x\x00", "😀"]))] = draw(scalars)
            done.append(f"{kind} at {path}")
        elif kind == "share" and len(filters) >= 2:
            # the same list in two places: yaml.safe_dump writes an anchor and an alias
            first, second = draw(st.permutations(filters))[:2]
            if first[: len(second)] != second and second[: len(first)] != first:
                _get(data, second[:-1])[second[-1]] = _get(data, first)
                done.append(f"share {first} as {second}")
        elif kind == "many" and filters:
            # around a filter's limits: values of an in list, any_of alternatives (the file's own limit on values is
            # tested on its own in tests/mappings/test_source.py: a file at it takes a second to read, too long here)
            where = _get(data, draw(st.sampled_from(filters)))
            if draw(st.booleans()):
                count = draw(st.sampled_from([999, 1_001]))
                where.append({"field": "subject", "op": "not_in", "value": [f"s{n}" for n in range(count)]})
            else:
                count = draw(st.sampled_from([2, 99, 101]))
                where.append({"any_of": [{"field": "subject", "op": "eq", "value": f"s{n}"} for n in range(count)]})
            done.append(f"{count} values or alternatives")
        elif kind == "bomb" and filters:
            bombs.append((_get(data, draw(st.sampled_from(filters))), draw(st.integers(1, 9))))
    for where, levels in bombs:
        # nested aliases, each level repeating the one below ten times ("billion laughs")
        bomb: Any = ["call"] * 10
        for _level in range(levels):
            bomb = [bomb] * 10
        where.append({"field": "activity_kind", "op": "in", "value": bomb})
        done.append(f"bomb of 10^{levels + 1} values")
    text = yaml.safe_dump(
        data,
        sort_keys=False,
        allow_unicode=draw(st.booleans()),
        default_flow_style=draw(st.sampled_from([False, None])),
        width=10_000,
    )
    if DEEP in text:
        depth = draw(st.sampled_from([2, 63, 65, 200, 5_000]))
        text = text.replace(DEEP, "[" * depth + "x" + "]" * depth, 1)
        done.append(f"nested {depth} deep")
    pad = draw(st.sampled_from([1_000, MAX_FILE_BYTES])) if PAD in text else 0
    if pad:
        done.append(f"padded with {pad:,} characters")
    return text, pad, done


# --- the property ----------------------------------------------------------------------------------------------


Case = tuple[str, int, list[str]]


@dataclass
class Outcome:
    validated: list[Problem]
    previewed: list[Problem]
    megabytes: float


def _run(engine: Engine, text: str) -> Outcome:
    """Validate, then preview, then each again under tracemalloc for its peak memory (the bound is per call)."""
    # the bounds are asserted after the fact; should a file blow far past them (an alias bomb expanded, say), stop
    # the run with every thread's traceback rather than hang or swap
    faulthandler.dump_traceback_later(HARD_STOP, exit=True)
    try:
        outcomes, peaks = [], []
        for call in (validate, preview):
            outcomes.append(call(engine, text))
        tracemalloc.start()
        try:
            for call, outcome in zip((validate, preview), outcomes, strict=True):
                tracemalloc.reset_peak()
                assert call(engine, text) == outcome
                peaks.append(tracemalloc.get_traced_memory()[1] / 1e6)
        finally:
            tracemalloc.stop()
    finally:
        faulthandler.cancel_dump_traceback_later()
    return Outcome(outcomes[0], outcomes[1], max(peaks))


def _check(outcome: Outcome, done: list[str]) -> None:
    event("refused" if outcome.validated else "valid, computed")
    # validate ok <=> preview computes; a refusal is the same refusal either way
    assert bool(outcome.validated) == bool(outcome.previewed), (done, outcome)
    for problem in outcome.validated + outcome.previewed:
        assert problem.line is not None and problem.column is not None, (done, problem)
        assert str(problem).startswith(f"m.yaml:{problem.line}:{problem.column}: "), problem
    assert outcome.megabytes < MEGABYTES, (done, outcome.megabytes)


PROPERTY = settings(
    derandomize=True,  # the same files on every run and machine
    deadline=None,  # no timed assertions in tests; the loader's limits bound the work per file
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@pytest.mark.slow  # fuzzing: 50-60 generated mapping files, each computed
@settings(PROPERTY, max_examples=60)
@given(case=mutated(max_mutations=1))
def test_examples_with_one_change_validate_iff_they_compute(world_engine: Engine, case: Case) -> None:
    text, pad, done = case
    _check(_run(world_engine, text.replace(PAD, "x" * pad, 1)), done)


@pytest.mark.slow  # fuzzing: 50-60 generated mapping files, each computed
@settings(PROPERTY, max_examples=50)
@given(case=mutated(max_mutations=4))
def test_examples_with_several_changes_validate_iff_they_compute(world_engine: Engine, case: Case) -> None:
    text, pad, done = case
    _check(_run(world_engine, text.replace(PAD, "x" * pad, 1)), done)


def test_the_shipped_examples_validate_and_compute_on_the_world(world_engine: Engine) -> None:
    for data in BASES:
        outcome = _run(world_engine, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        assert outcome.validated == [] and outcome.previewed == [], outcome


def test_a_filter_on_every_field_with_a_value_of_its_type_computes(world_engine: Engine) -> None:
    """The valid side is not vacuous: a typed value for every canonical field of the counted records computes."""
    samples = {"text": "x", "number": 5, "boolean": True, "date": date(2026, 7, 1), "datetime": "2026-07-01T10:00Z"}
    for data in BASES[:1]:
        for record, of in ((RecordType.activity, "activities"), (RecordType.opportunity, "opportunities")):
            where = [
                {"field": name, "op": "eq", "value": samples[kind.value]} for name, kind in CANONICAL[record].items()
            ]
            changed = copy.deepcopy(data)
            changed["objectives"][0]["key_results"][0]["metric"] = {"type": "count", "of": of, "where": where}
            outcome = _run(world_engine, yaml.safe_dump(changed, sort_keys=False))
            assert outcome.validated == [] and outcome.previewed == [], outcome
