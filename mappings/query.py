"""Compile the mapping file's filters and metrics into SQL (SQLAlchemy statements are plain values here).

Every metric becomes an *evidence* query: one row per record that counted, with the member it is credited to and
its value. The service inserts those rows (``INSERT … SELECT``, nothing passes through Python) and aggregates them,
so a key result is explainable down to the CRM records that produced it.

Evidence columns: ``part`` (counted | numerator | denominator | pair), ``record_id``, ``related_id`` (the distinct
key, the opportunity an activity turned into, or the response to an inquiry), ``owner_id``, ``value`` and
``occurred_at``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, String, and_, bindparam, exists, false, func, literal, or_, select, true, union_all
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from mappings.config import (
    Counted,
    CountMetric,
    DateField,
    Distinct,
    RatioMetric,
    ResponseTimeMetric,
    SpeedToLeadMetric,
    SumMetric,
    WaitMetric,
)
from mappings.fields import CustomField, FieldType, RecordType, ResolvedField, resolve
from mappings.filters import AnyOf, Condition, FieldCondition, FollowedByCondition, Op
from mappings.sql import Scope, Tables, epoch_seconds, number_of, plus_days, text_of, typed_null
from mappings.values import COMPARED, compared_type, sql_value


class MappingRuntimeError(ValueError):
    """The mapping cannot be evaluated against this CRM connection (e.g. a custom field has no name there)."""


@functools.cache
def alias(table: Any, name: str) -> Any:
    """``table.alias(name)``, one object per table and name for the process: an alias is immutable and may stand in
    any number of statements, and its column collection (a proxy per column, 24 on the activity table) is then built
    once, not for every statement an incremental run builds (with the narrowed CTE's, a fifth of its time under
    cProfile)."""
    return table.alias(name)


class FilterCompiler:
    """Turns conditions on records of one type (held in ``base``, a table or alias) into SQL expressions."""

    def __init__(
        self,
        *,
        tables: Tables,
        scope: Scope,
        custom: dict[str, CustomField],
        narrow: tuple[Any, Sequence[str] | Select[Any] | BindParameter[Any]] | None = None,
        on_accounts: tuple[tuple[Any, ...], Sequence[str]] | None = None,
    ) -> None:
        """``narrow``: (base, ids) when a query only asks about these records of ``base`` (an incremental run);
        a contact sub-select on ``base`` then reads only their links instead of every link of the connection.
        ``ids``: a list of ids, a select of them (the ids of a narrowed CTE), or the parameter they come in.
        ``on_accounts``: (bases, account ids) when every record of those bases a query reads is on one of these
        accounts (an incremental run's response times); an account sub-select on them then lists only these."""
        self.tables = tables
        self.scope = scope
        self.custom = custom
        self.narrow = narrow
        self.on_accounts = on_accounts

    def where(self, conditions: Sequence[Condition], base: Any, record: RecordType) -> list[ColumnElement[bool]]:
        return [self.condition(c, base, record) for c in conditions]

    def condition(self, condition: Condition, base: Any, record: RecordType) -> ColumnElement[bool]:
        if isinstance(condition, AnyOf):
            return or_(*(self.condition(c, base, record) for c in condition.any_of))
        if isinstance(condition, FollowedByCondition):
            return exists(self.following_opportunity(condition, base).with_only_columns(literal(1)))
        assert isinstance(condition, FieldCondition)
        field = resolve(condition.field, record, self.custom)
        if field.via is None:
            return self._compare(self.column(field, base), field, condition)
        return self._related(field, condition, base, record)

    def following_opportunity(self, condition: FollowedByCondition, activity: Any) -> Select[Any]:
        """Opportunities on the activity's account created after it (or at the same instant with ``at_or_after``)
        and, with ``within_days``, at most N days after it; the first one first."""
        opp = alias(self.tables.opportunity, "followed")
        spec = condition.followed_by
        clauses = [
            opp.c.connection_id == activity.c.connection_id,
            opp.c.account_id == activity.c.account_id,
            opp.c.is_deleted == false(),
            opp.c.created_at >= activity.c.occurred_at
            if spec.at_or_after
            else opp.c.created_at > activity.c.occurred_at,
            opp.c.created_at < self.scope.as_of,
            *self.where(spec.where, opp, RecordType.opportunity),
        ]
        if spec.within_days:
            clauses.append(opp.c.created_at <= plus_days(activity.c.occurred_at, literal(spec.within_days)))
        return (
            select(opp.c.external_id)
            .where(*clauses)
            .order_by(opp.c.created_at, opp.c.external_id)
            .limit(1)
            .correlate_except(opp)
        )

    def _related(self, field: ResolvedField, condition: FieldCondition, base: Any, record: RecordType) -> Any:
        """``base.fk IN (related records matching)``: an uncorrelated sub-select, evaluated once.

        A correlated EXISTS per counted row let SQLite's planner (without statistics) scan every matching contact
        for each activity: 52 s for 100,000 activities, against well under a second this way.
        """
        assert field.via is not None
        target = alias(getattr(self.tables, field.via.value), f"rel_{field.via.value}")
        matching = [
            target.c.connection_id == self.scope.connection_id,
            self._compare(self.column(field, target), field, condition),
        ]
        if field.via == RecordType.contact:
            tables = self.tables
            link = alias(
                tables.activity_contact if record == RecordType.activity else tables.opportunity_contact, "rel_link"
            )
            link_id = link.c.activity_id if record == RecordType.activity else link.c.opportunity_id
            clauses = [
                link.c.connection_id == self.scope.connection_id,
                target.c.external_id == link.c.contact_id,
                target.c.is_deleted == false(),
                *matching,
            ]
            if record != RecordType.activity:
                clauses.append(link.c.is_deleted == false())
            if self.narrow is not None and self.narrow[0] is base:
                clauses.append(link_id.in_(self._narrowed_ids()))
            return base.c.external_id.in_(select(link_id).select_from(link).join(target, true()).where(*clauses))
        foreign_key = {"account": "account_id", "opportunity": "opportunity_id", "owner": "owner_id"}[field.via.value]
        if self.narrow is not None and self.narrow[0] is base:
            # only the records the narrowed ones point to: the sub-select otherwise lists every matching account
            # (20,000 at a million activities) for a question about one activity
            own = alias(getattr(base, "element", base), "narrowed")
            matching.append(
                target.c.external_id.in_(
                    select(own.c[foreign_key]).where(
                        own.c.connection_id == self.scope.connection_id, own.c.external_id.in_(self._narrowed_ids())
                    )
                )
            )
        if foreign_key == "account_id" and self.on_accounts is not None and any(base is b for b in self.on_accounts[0]):
            # their own accounts only: listing every matching account read the whole account table (20,000 rows,
            # 8 ms at a million activities) for the inquiries of one or two accounts
            matching.append(target.c.external_id.in_(list(self.on_accounts[1])))
        return base.c[foreign_key].in_(select(target.c.external_id).where(*matching))

    def _narrowed_ids(self) -> Any:
        assert self.narrow is not None
        ids = self.narrow[1]
        return ids if isinstance(ids, Select | BindParameter) else list(ids)

    def column(self, field: ResolvedField, table: Any) -> ColumnElement[Any]:
        """The SQL expression of a resolved field on ``table`` (a canonical column or a path into ``raw``)."""
        if field.kind == "canonical":
            return table.c[field.name]
        if field.kind == "custom":
            spec = self.custom[field.name]
            crm_name = spec.name_in(self.scope.crm)
            if not crm_name:
                raise MappingRuntimeError(
                    f"custom field {field.name!r} has no {self.scope.crm} name: add `{self.scope.crm}: <field>` "
                    f"under custom_fields.{field.name}"
                )
            return self._raw(table, crm_name)
        return self._raw(table, field.name)

    def _raw(self, table: Any, name: str) -> ColumnElement[Any]:
        path = [*self.scope.raw_prefix, *name.split(".")]
        return table.c.raw[tuple(path)].as_string()

    def _compare(self, column: ColumnElement[Any], field: ResolvedField, cond: FieldCondition) -> ColumnElement[bool]:
        op, ftype = cond.op, compared_type(field, cond)
        if field.kind != "canonical":
            if ftype == FieldType.boolean:
                column = func.lower(text_of(column)).in_(["true", "1"])
            elif ftype == FieldType.number:
                column = number_of(column)
            elif field.type in (FieldType.date, FieldType.datetime):
                column = func.substr(text_of(column), 1, 10 if field.type == FieldType.date else 19)
        # the same conversion validation ran (mappings.values), so a validated filter cannot fail here
        value: Any = sql_value(cond.value, ftype) if op in COMPARED else None
        if op == Op.eq:
            return column == value
        if op == Op.ne:
            return or_(column.is_(None), column != value)
        if op == Op.in_:
            return column.in_(value)
        if op == Op.not_in:
            return or_(column.is_(None), column.not_in(value))
        if op in (Op.gt, Op.gte, Op.lt, Op.lte):
            return {Op.gt: column > value, Op.gte: column >= value, Op.lt: column < value, Op.lte: column <= value}[op]
        if op in (Op.contains, Op.not_contains, Op.starts_with):
            text = func.lower(text_of(column))
            if op == Op.starts_with:
                return text.startswith(str(cond.value).lower(), autoescape=True)
            found = text.contains(str(cond.value).lower(), autoescape=True)
            return found if op == Op.contains else or_(column.is_(None), ~found)
        if op in (Op.is_set, Op.is_not_set):
            present: ColumnElement[bool] = column.is_not(None)
            if ftype == FieldType.text:
                present = and_(present, text_of(column) != "")
            return present if op == Op.is_set else ~present
        if op == Op.is_true:
            return column == true()
        return or_(column.is_(None), column == false())


def _base(tables: Tables, of: Counted) -> tuple[Any, RecordType]:
    if of == Counted.activities:
        return alias(tables.activity, "counted"), RecordType.activity
    if of == Counted.leads:
        return alias(tables.lead, "counted"), RecordType.lead
    return alias(tables.opportunity, "counted"), RecordType.opportunity


# The execution parameters of a narrowed evidence query (``part_evidence(narrowed=True)`` /
# ``part_evidence(by_keys=True)``): the ids of the records, or the distinct keys, it asks about. As parameters, not
# values, a narrowed query is built once per key result and part of a run, whatever the number of chunks, and its
# CTE and aliases are shared by every run of the process (their column collections are built once).
NARROWED_IDS = "narrowed_ids"
NARROWED_KEYS = "narrowed_keys"


def _ids_parameter(name: str) -> Any:
    return bindparam(name, expanding=True, type_=String())


@functools.cache
def _narrowed(table: Any, connection_id: int) -> Any:
    """The records of ``table`` whose ids are ``NARROWED_IDS``, looked up by id first (a MATERIALIZED CTE): with
    the id list in the query's WHERE, SQLite's planner (with statistics) preferred the owner/kind/time index for 45
    ids and read every meeting of the team in the window (0.5 s at a million activities)."""
    return (
        select(table)
        .where(table.c.connection_id == connection_id, table.c.external_id.in_(_ids_parameter(NARROWED_IDS)))
        .cte(f"counted_{table.name}_narrowed")
        .prefix_with("MATERIALIZED")
    )


@functools.cache
def _keyed(table: Any, connection_id: int, distinct: Distinct, link: Any) -> Any:
    """The records of ``table`` (activities or opportunities) whose distinct key is one of ``NARROWED_KEYS``, looked
    up by the key's own index first (a MATERIALIZED CTE, like ``_narrowed``): with the keys in the query's WHERE,
    SQLite's planner walked every meeting of the team in the window by ix_activity_owner_kind_time for 100 contacts
    (1.9 s at a million activities) where the contacts' links name a few hundred activities."""
    keys = _ids_parameter(NARROWED_KEYS)
    if distinct == Distinct.contacts:
        linked = link.c.activity_id if "activity_id" in link.c else link.c.opportunity_id
        member = table.c.external_id.in_(
            select(linked).where(link.c.connection_id == connection_id, link.c.contact_id.in_(keys))
        )
    elif distinct == Distinct.accounts:
        member = table.c.account_id.in_(keys)
    else:  # opportunities: an activity's opportunity, or the opportunity itself
        member = (table.c.opportunity_id if "opportunity_id" in table.c else table.c.external_id).in_(keys)
    return (
        select(table)
        .where(table.c.connection_id == connection_id, member)
        .cte(f"counted_{table.name}_by_{distinct.value}")
        .prefix_with("MATERIALIZED")
    )


def part_evidence(
    metric: CountMetric | SumMetric,
    *,
    part: str,
    tables: Tables,
    scope: Scope,
    custom: dict[str, CustomField],
    narrowed: bool = False,
    by_keys: bool = False,
) -> Select[Any]:
    """Evidence rows of a count or sum: the team's records matching the filter in the window.

    An incremental run narrows it: ``narrowed`` to the records whose ids it is executed with (``NARROWED_IDS``),
    ``by_keys`` (distinct counts) to the accounts/contacts/opportunities whose first record may have changed
    (``NARROWED_KEYS``).
    """
    base, record = _base(tables, metric.of)
    if narrowed:
        base = _narrowed(getattr(base, "element", base), scope.connection_id)
    elif by_keys and isinstance(metric, CountMetric) and metric.distinct is not None and record != RecordType.lead:
        link = tables.activity_contact if record == RecordType.activity else tables.opportunity_contact
        base = _keyed(getattr(base, "element", base), scope.connection_id, metric.distinct, link)
    narrow = (base, _ids_parameter(NARROWED_IDS)) if narrowed else None
    compiler = FilterCompiler(tables=tables, scope=scope, custom=custom, narrow=narrow)
    date_field = metric.date_field or (
        DateField.occurred_at if metric.of == Counted.activities else DateField.created_at
    )
    clauses: list[ColumnElement[bool]] = [
        base.c.connection_id == scope.connection_id,
        base.c.is_deleted == false(),
        base.c.owner_id.in_(scope.owner_ids),
    ]
    if narrowed:
        clauses.append(base.c.external_id.in_(_ids_parameter(NARROWED_IDS)))
    when: Any = typed_null("datetime")
    if date_field != DateField.none:
        if date_field.value not in base.c:
            raise MappingRuntimeError(f"date_field {date_field.value} does not exist on {record.value}")
        when = base.c[date_field.value]
        if date_field in (DateField.close_date, DateField.converted_on):
            clauses += [when >= scope.start.date(), when <= scope.last_day]
            when = typed_null("datetime")  # evidence keeps timestamps; the close date is on the record itself
        else:
            clauses += [when >= scope.start, when < scope.end]
    clauses += compiler.where(metric.where, base, record)
    if isinstance(metric, SumMetric):
        field = resolve(metric.field, record, custom)
        column = compiler.column(field, base)
        value: Any = column if field.kind == "canonical" else number_of(column)
        clauses.append(value.is_not(None))
    else:
        value = literal(1.0)
    followed = next((c for c in metric.where if isinstance(c, FollowedByCondition)), None)
    related: Any = typed_null("text")
    if followed is not None:
        related = compiler.following_opportunity(followed, base).scalar_subquery()
    columns = [
        literal(part).label("part"),
        base.c.external_id.label("record_id"),
        base.c.owner_id.label("owner_id"),
        func.coalesce(value, 0.0).label("value"),
        when.label("occurred_at"),
    ]
    if metric.type != "count" or metric.distinct is None:
        return select(*columns, related.label("related_id")).where(*clauses)
    key, join = _distinct_key(metric.distinct, base, record, tables)
    inner = select(
        *columns,
        key.label("related_id"),
        func.row_number()
        .over(partition_by=key, order_by=(_order_column(base, date_field), base.c.external_id))
        .label("rank"),
    )
    if join is not None:
        inner = inner.select_from(base.join(join[0], join[1]))
    if by_keys:
        clauses.append(key.in_(_ids_parameter(NARROWED_KEYS)))
    inner_sq = inner.where(*clauses, key.is_not(None)).subquery("ranked")
    return select(
        inner_sq.c.part,
        inner_sq.c.record_id,
        inner_sq.c.owner_id,
        inner_sq.c.value,
        inner_sq.c.occurred_at,
        inner_sq.c.related_id,
    ).where(inner_sq.c.rank == 1)


def _order_column(base: Any, date_field: DateField) -> Any:
    """Who reached a distinct account/contact first gets the credit: order by the date that put it in the window."""
    return base.c.created_at if date_field == DateField.none else base.c[date_field.value]


def _distinct_key(distinct: Distinct, base: Any, record: RecordType, tables: Tables) -> tuple[Any, Any]:
    if record == RecordType.lead:  # a lead names its (converted) account, contact and opportunity itself
        return base.c[
            {"accounts": "account_id", "contacts": "contact_id", "opportunities": "opportunity_id"}[distinct]
        ], None
    if distinct == Distinct.accounts:
        return base.c.account_id, None
    if distinct == Distinct.opportunities:
        return (base.c.opportunity_id if record == RecordType.activity else base.c.external_id), None
    if record == RecordType.activity:
        link = alias(tables.activity_contact, "distinct_link")
        on = and_(link.c.connection_id == base.c.connection_id, link.c.activity_id == base.c.external_id)
    else:
        link = alias(tables.opportunity_contact, "distinct_link")
        on = and_(
            link.c.connection_id == base.c.connection_id,
            link.c.opportunity_id == base.c.external_id,
            link.c.is_deleted == false(),
        )
    return link.c.contact_id, (link, on)


def _answers(metric: WaitMetric, response: Any, compiler: FilterCompiler, scope: Scope) -> list[ColumnElement[bool]]:
    """What makes an activity the team's answer (to an inquiry or a lead): live, logged by a member by ``as_of``, of
    a response kind, matching the response filter, and outbound or without a direction (or internal, if allowed)."""
    return [
        response.c.is_deleted == false(),
        response.c.occurred_at <= scope.as_of,
        response.c.activity_kind.in_(metric.response_kinds),
        *compiler.where(metric.response, response, RecordType.activity),
        or_(
            response.c.direction.is_(None),
            response.c.direction.in_(["outbound", "internal"] if metric.internal_responses else ["outbound"]),
        ),
        response.c.owner_id.in_(scope.owner_ids),
    ]


def speed_to_lead_evidence(
    metric: SpeedToLeadMetric,
    *,
    tables: Tables,
    scope: Scope,
    custom: dict[str, CustomField],
    only_leads: Sequence[str] | None = None,
) -> Select[Any]:
    """One row per lead a member owns that was created in the window, with the team's first answer after it
    (``only_leads``: of these leads only, each with all its candidate answers).

    The answer is the first activity (see ``_answers``) strictly after the lead was created that was logged on the
    lead (Salesforce WhoId), on its contact (a HubSpot lead is a contact; a converted Salesforce lead has one), or
    on the account it was converted to. ``value`` is the wait in seconds, NULL while unanswered.

    Set-based: the candidate answers of all leads are found by three joins, each on its own index (activity by
    lead, by account, and activity_contact by contact), and ranked per lead. One correlated subquery with the three
    links OR-ed together scanned every activity per lead on SQLite (13 s for 30 leads and 3,200 activities).
    """
    compiler = FilterCompiler(tables=tables, scope=scope, custom=custom)
    lead = tables.lead.alias("lead")
    chosen = [
        lead.c.connection_id == scope.connection_id,
        lead.c.is_deleted == false(),
        lead.c.owner_id.in_(scope.owner_ids),
        lead.c.created_at >= scope.start,
        lead.c.created_at < scope.end,
        *compiler.where(metric.leads, lead, RecordType.lead),
    ]
    if only_leads is not None:
        chosen.append(lead.c.external_id.in_(list(only_leads)))

    def answers(via: str) -> Select[Any]:
        """The answers logged on the lead (``via`` lead), on its account or on its contact."""
        response = tables.activity.alias(f"answer_by_{via}")
        same = response.c.connection_id == lead.c.connection_id
        if via == "lead":
            source = lead.join(response, and_(same, response.c.lead_id == lead.c.external_id))
        elif via == "account":
            source = lead.join(response, and_(same, response.c.account_id == lead.c.account_id))
        else:
            link = tables.activity_contact.alias("lead_contact")
            source = lead.join(
                link, and_(link.c.connection_id == lead.c.connection_id, link.c.contact_id == lead.c.contact_id)
            ).join(response, and_(same, response.c.external_id == link.c.activity_id))
        return (
            select(
                lead.c.external_id.label("lead_id"),
                response.c.external_id.label("answer_id"),
                response.c.occurred_at.label("answered_at"),
            )
            .select_from(source)
            .where(*chosen, response.c.occurred_at > lead.c.created_at, *_answers(metric, response, compiler, scope))
        )

    candidates = union_all(answers("lead"), answers("contact"), answers("account")).subquery("candidates")
    ranked = select(
        candidates.c.lead_id,
        candidates.c.answer_id,
        candidates.c.answered_at,
        func.row_number()
        .over(partition_by=candidates.c.lead_id, order_by=(candidates.c.answered_at, candidates.c.answer_id))
        .label("rank"),
    ).subquery("ranked")
    first = (
        select(ranked.c.lead_id, ranked.c.answer_id, ranked.c.answered_at)
        .where(ranked.c.rank == 1)
        .subquery("first_answer")
    )
    leads = (
        select(
            lead.c.external_id.label("record_id"),
            lead.c.owner_id.label("owner_id"),
            lead.c.created_at.label("occurred_at"),
            first.c.answer_id.label("related_id"),
            first.c.answered_at.label("answered_at"),
        )
        .select_from(lead.outerjoin(first, first.c.lead_id == lead.c.external_id))
        .where(*chosen)
    )
    return _pairs(leads.subquery("leads"))


def _first_answer(response: Any, source: Any, matches: list[ColumnElement[bool]], correlated: Any) -> tuple[Any, Any]:
    """The id and the time of the first answer among ``source``'s rows matching ``matches`` (correlated subqueries:
    everything but ``correlated`` comes from the enclosing query)."""
    first_id = (
        select(response.c.external_id)
        .select_from(source)
        .where(*matches)
        .order_by(response.c.occurred_at, response.c.external_id)
        .limit(1)
        .correlate_except(*correlated)
        .scalar_subquery()
    )
    first_at = (
        select(func.min(response.c.occurred_at))
        .select_from(source)
        .where(*matches)
        .correlate_except(*correlated)
        .scalar_subquery()
    )
    return first_id, first_at


def _pairs(sq: Any) -> Select[Any]:
    """Evidence rows of waits: (record, owner, seconds until the answer or NULL, when it began, the answer)."""
    return select(
        literal("pair").label("part"),
        sq.c.record_id,
        sq.c.owner_id,
        (epoch_seconds(sq.c.answered_at) - epoch_seconds(sq.c.occurred_at)).label("value"),
        sq.c.occurred_at,
        sq.c.related_id,
    )


def activities_on_accounts(
    tables: Tables, connection_id: int, accounts: Sequence[str], name: str, *also: ColumnElement[bool]
) -> Any:
    """The activities on ``accounts`` (and matching ``also``), read first by ix_activity_account: a MATERIALIZED
    CTE named ``name``, so that no estimate can make the planner walk another index of the whole table instead
    (an incremental run's response times here, a KAM criterion's accounts in ``kam.criterion_query``)."""
    activity = tables.activity
    return (
        select(activity)
        .where(activity.c.connection_id == connection_id, activity.c.account_id.in_(list(accounts)), *also)
        .cte(name)
        .prefix_with("MATERIALIZED")
    )


def response_evidence(
    metric: ResponseTimeMetric,
    *,
    tables: Tables,
    scope: Scope,
    custom: dict[str, CustomField],
    only_accounts: Sequence[str] | None = None,
) -> Select[Any]:
    """One row per inbound inquiry of the team in the window, with the team's first response after it.

    ``value`` is the response time in seconds, NULL while unanswered (the service counts those with the time they
    have waited so far). ``only_accounts`` narrows to the inquiries on some accounts (an incremental run).
    """
    inquiry: Any = tables.activity.alias("inquiry")
    response = tables.activity.alias("response")
    if only_accounts is not None:
        # with an IN list of 101 accounts (one change and the activities dated in the minutes since the last run)
        # SQLite's estimates chose ix_activity_owner_kind_time and walked every inquiry of the team in the window:
        # 2 s per statement at a million activities, where the account index needs 5,000 entries
        inquiry = activities_on_accounts(
            tables, scope.connection_id, only_accounts, "inquiry",
            tables.activity.c.direction == "inbound",  # (in no index: no other plan to draw the planner to)
        )  # fmt: skip
    # the inquiries are on ``only_accounts``, and so are their responses when matched by account
    narrowed = (inquiry, response) if metric.match == "account" else (inquiry,)
    on_accounts = (narrowed, list(only_accounts)) if only_accounts is not None else None
    compiler = FilterCompiler(tables=tables, scope=scope, custom=custom, on_accounts=on_accounts)
    matches: list[ColumnElement[bool]] = [
        response.c.connection_id == inquiry.c.connection_id,
        response.c.occurred_at > inquiry.c.occurred_at,
        *_answers(metric, response, compiler, scope),
    ]
    if metric.match == "account":
        # ix_activity_account (connection, account, occurred_at, external_id) holds the candidates of one inquiry
        # in the order the first answer is chosen by
        source: Any = response
        matches.append(response.c.account_id == inquiry.c.account_id)
    else:
        # drive from the inquiry's own contacts to the activities of those contacts (both by index); asking
        # "does this response share a contact?" for every activity took 150 s for 20,000 activities
        asked = tables.activity_contact.alias("asked")
        answered = tables.activity_contact.alias("answered")
        source = asked.join(
            answered,
            and_(answered.c.connection_id == asked.c.connection_id, answered.c.contact_id == asked.c.contact_id),
        ).join(
            response,
            and_(
                response.c.connection_id == answered.c.connection_id, response.c.external_id == answered.c.activity_id
            ),
        )
        matches += [asked.c.connection_id == inquiry.c.connection_id, asked.c.activity_id == inquiry.c.external_id]
    correlated = (asked, answered, response) if metric.match == "contact" else (response,)
    first_id, first_at = _first_answer(response, source, matches, correlated)
    inquiries = select(
        inquiry.c.external_id.label("record_id"),
        inquiry.c.owner_id.label("owner_id"),
        inquiry.c.occurred_at.label("occurred_at"),
        first_id.label("related_id"),
        first_at.label("answered_at"),
    ).where(
        inquiry.c.connection_id == scope.connection_id,
        inquiry.c.is_deleted == false(),
        inquiry.c.direction == "inbound",
        inquiry.c.activity_kind.in_(metric.inquiry_kinds),
        inquiry.c.owner_id.in_(scope.owner_ids),
        inquiry.c.occurred_at >= scope.start,
        inquiry.c.occurred_at < scope.end,
        (inquiry.c.account_id if metric.match == "account" else inquiry.c.external_id).is_not(None),
        *compiler.where(metric.inbound, inquiry, RecordType.activity),
    )
    return _pairs(inquiries.subquery("inquiries"))


def metric_evidence(metric: Any, *, tables: Tables, scope: Scope, custom: dict[str, CustomField]) -> list[Select[Any]]:
    """The evidence queries of a metric computed from records (count, sum, ratio, response_time)."""
    if isinstance(metric, CountMetric | SumMetric):
        return [part_evidence(metric, part="counted", tables=tables, scope=scope, custom=custom)]
    if isinstance(metric, RatioMetric):
        return [
            part_evidence(metric.numerator, part="numerator", tables=tables, scope=scope, custom=custom),
            part_evidence(metric.denominator, part="denominator", tables=tables, scope=scope, custom=custom),
        ]
    if isinstance(metric, ResponseTimeMetric):
        return [response_evidence(metric, tables=tables, scope=scope, custom=custom)]
    if isinstance(metric, SpeedToLeadMetric):
        return [speed_to_lead_evidence(metric, tables=tables, scope=scope, custom=custom)]
    return []
