"""Parser and evaluator for the SOQL subset the sandbox org answers.

Grammar (keywords and field names case-insensitive)::

    SELECT item [, item ...] FROM SObject
        [WHERE expr] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST] [, ...]] [LIMIT n]
    item      := field | '(' SELECT field [, ...] FROM ChildRelationship [WHERE expr] [ORDER BY ...] [LIMIT n] ')'
    expr      := term (OR term)*
    term      := factor (AND factor)*
    factor    := NOT factor | '(' expr ')' | condition
    condition := field (= | != | <> | < | <= | > | >=) literal | field [NOT] IN (literal, ...)
    literal   := 'text' | number | true | false | null | 2026-01-01 | 2026-01-01T00:00:00[.000](Z|+00:00)

Datetime values are stored in the API's fixed UTC form ('2026-07-01T09:30:00.000+0000'), so a datetime literal
is normalised to that form once and compared as a string: the order of those strings is the order of the
instants.
Text comparisons are case-insensitive, as in Salesforce. Nulls sort first in ASC and last in DESC.

A parenthesised item is a parent-to-child subquery over a child relationship (Task.TaskRelations,
Event.EventRelations, see ``salesforce_relations``); the query keeps it as a :class:`SubQuery` and the API layer,
which knows the org's records, fills it in per parent row.

Errors raise :class:`SoqlError` carrying the Salesforce error code (MALFORMED_QUERY, INVALID_FIELD,
INVALID_TYPE).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from connectors.sandbox import schema as sch
from connectors.sandbox.salesforce_relations import child_relationship, find_any_sobject

Record = dict[str, Any]
Predicate = Callable[[Record], bool]


class SoqlError(Exception):
    """A query the org refuses; `error_code` is what Salesforce would answer (e.g. INVALID_FIELD)."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class OrderKey:
    """One ORDER BY item."""

    field: str
    descending: bool = False
    nulls_first: bool = True


@dataclass(frozen=True)
class SubQuery:
    """A parent-to-child subquery: the relationship name (schema casing, the key in each parent row), the child
    query, and the child's field that names the parent."""

    relationship: str
    query: Query
    parent_field: str


@dataclass(frozen=True)
class Query:
    """A parsed query: fields in schema casing, a compiled WHERE predicate, ordering, limit and subqueries."""

    sobject: sch.SObjectSchema
    fields: list[str]
    where: Predicate | None
    order_by: list[OrderKey]
    limit: int | None
    subqueries: tuple[SubQuery, ...] = ()

    def run(self, records: Iterable[Record]) -> list[Record]:
        """Filter, sort and limit `records` (full records, not projected); returns the matching records."""
        matched = [r for r in records if self.where(r)] if self.where else list(records)
        for key in reversed(self.order_by):
            text = self.sobject.fields[key.field] in sch.FOLDED_TEXT_TYPES
            present = [r for r in matched if r.get(key.field) is not None]
            absent = [r for r in matched if r.get(key.field) is None]
            present.sort(key=_sort_key(key.field, text), reverse=key.descending)
            matched = absent + present if key.nulls_first else present + absent
        return matched[: self.limit] if self.limit is not None else matched

    def project(self, record: Record) -> Record:
        """Return only the SELECTed fields of `record`, in SELECT order."""
        return {name: record.get(name) for name in self.fields}


def _sort_key(name: str, folded: bool) -> Callable[[Record], Any]:
    return (lambda record: record[name].lower()) if folded else (lambda record: record[name])


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text[position : position + 10]}'")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    return tokens


_MISSING = object()


class _Parser:
    def __init__(self, tokens: list[_Token], *, parent: sch.SObjectSchema | None = None) -> None:
        self.tokens = tokens
        self.index = 0
        self.sobject: sch.SObjectSchema | None = None
        self.parent = parent  # set while parsing a subquery: FROM names a child relationship of this object
        self.parent_field = ""
        self.relationship = ""

    # --- token helpers -------------------------------------------------------------------------------------
    def _peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _is_keyword(self, *words: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "name" and token.text.upper() in words

    def _next(self, what: str) -> _Token:
        token = self._peek()
        if token is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected end of query, expecting {what}")
        self.index += 1
        return token

    def _expect_keyword(self, word: str) -> None:
        token = self._next(word)
        if token.kind != "name" or token.text.upper() != word:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{token.text}', expecting {word}")

    def _expect_punct(self, char: str) -> None:
        token = self._next(f"'{char}'")
        if token.text != char:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{token.text}', expecting '{char}'")

    def _field(self, name: str) -> str:
        assert self.sobject is not None
        found = self.sobject.field(name)
        if found is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{self.sobject.name}'. If you are attempting to use a "
                "custom field, be sure to append the '__c' after the custom field name. Please reference "
                "your WSDL or the describe call for the appropriate names.",
            )
        return found

    # --- grammar -------------------------------------------------------------------------------------------
    def parse(self) -> Query:
        self._expect_keyword("SELECT")
        raw_fields: list[str] = []
        nested: list[tuple[int, int]] = []  # token ranges of subqueries, parsed once the FROM object is known
        while True:
            token = self._next("field")
            if token.text == "(" and self.parent is None:
                start = self.index
                self.index = self._closing(start)
                nested.append((start, self.index))
                self.index += 1
            else:
                raw_fields.append(token.text)
            if self._peek() is None or self._peek().text != ",":  # type: ignore[union-attr]  # a repeated call is not narrowed
                break
            self.index += 1
        self._expect_keyword("FROM")
        object_token = self._next("an SObject name")
        self.sobject = self._from(object_token.text)
        fields = list(dict.fromkeys(self._field(raw) for raw in raw_fields))
        subqueries = tuple(self._subquery(start, end) for start, end in nested)
        where = None
        if self._is_keyword("WHERE"):
            self.index += 1
            where = self._expr()
        order_by: list[OrderKey] = []
        if self._is_keyword("ORDER"):
            self.index += 1
            self._expect_keyword("BY")
            order_by.append(self._order_key())
            while self._peek() is not None and self._peek().text == ",":  # type: ignore[union-attr]  # a repeated call is not narrowed
                self.index += 1
                order_by.append(self._order_key())
        limit = None
        if self._is_keyword("LIMIT"):
            self.index += 1
            token = self._next("a number")
            if token.kind != "number" or not token.text.isdigit():
                raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{token.text}', expecting a number")
            limit = int(token.text)
        leftover = self._peek()
        if leftover is not None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{leftover.text}'")
        return Query(self.sobject, fields, where, order_by, limit, subqueries)

    def _from(self, name: str) -> sch.SObjectSchema:
        if self.parent is not None:
            found = child_relationship(self.parent.name, name)
            if found is None:
                raise SoqlError(
                    "INVALID_TYPE",
                    f"Didn't understand relationship '{name}' in FROM part of query call. If you are attempting "
                    "to use a custom relationship, be sure to append the '__r' after the custom relationship name.",
                )
            child, self.parent_field, self.relationship = found
            return child
        sobject = find_any_sobject(name)
        if sobject is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"sObject type '{name}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name. Please reference your "
                "WSDL or the describe call for the appropriate names.",
            )
        return sobject

    def _closing(self, start: int) -> int:
        """Index of the ')' that closes the '(' just before ``start``."""
        depth = 1
        for index in range(start, len(self.tokens)):
            text = self.tokens[index].text
            depth += 1 if text == "(" else -1 if text == ")" else 0
            if depth == 0:
                return index
        raise SoqlError("MALFORMED_QUERY", "unexpected end of query, expecting ')'")

    def _subquery(self, start: int, end: int) -> SubQuery:
        inner = _Parser(self.tokens[start:end], parent=self.sobject)
        query = inner.parse()
        return SubQuery(inner.relationship, query, inner.parent_field)

    def _order_key(self) -> OrderKey:
        name = self._field(self._next("field").text)
        descending = False
        if self._is_keyword("ASC", "DESC"):
            descending = self._next("ASC").text.upper() == "DESC"
        nulls_first = not descending
        if self._is_keyword("NULLS"):
            self.index += 1
            token = self._next("FIRST or LAST")
            if token.text.upper() not in ("FIRST", "LAST"):
                raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{token.text}', expecting FIRST or LAST")
            nulls_first = token.text.upper() == "FIRST"
        return OrderKey(name, descending, nulls_first)

    def _expr(self) -> Predicate:
        terms = [self._term()]
        while self._is_keyword("OR"):
            self.index += 1
            terms.append(self._term())
        if len(terms) == 1:
            return terms[0]
        return lambda record: any(term(record) for term in terms)

    def _term(self) -> Predicate:
        factors = [self._factor()]
        while self._is_keyword("AND"):
            self.index += 1
            factors.append(self._factor())
        if len(factors) == 1:
            return factors[0]
        return lambda record: all(factor(record) for factor in factors)

    def _factor(self) -> Predicate:
        if self._is_keyword("NOT"):
            self.index += 1
            inner = self._factor()
            return lambda record: not inner(record)
        token = self._peek()
        if token is not None and token.text == "(":
            self.index += 1
            inner = self._expr()
            self._expect_punct(")")
            return inner
        return self._condition()

    def _condition(self) -> Predicate:
        token = self._next("a field")
        if token.kind != "name":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{token.text}', expecting a field name")
        name = self._field(token.text)
        assert self.sobject is not None
        field_type = self.sobject.fields[name]
        negate = False
        if self._is_keyword("NOT"):
            self.index += 1
            negate = True
            if not self._is_keyword("IN"):
                raise SoqlError("MALFORMED_QUERY", "unexpected token: 'NOT', expecting IN")
        if self._is_keyword("IN"):
            self.index += 1
            self._expect_punct("(")
            values = {_normalise(self._literal(name, field_type), field_type)}
            while self._peek() is not None and self._peek().text == ",":  # type: ignore[union-attr]  # a repeated call is not narrowed
                self.index += 1
                values.add(_normalise(self._literal(name, field_type), field_type))
            self._expect_punct(")")
            return _in_predicate(name, field_type, values, negate)
        op = self._next("an operator")
        if op.kind != "op":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{op.text}', expecting an operator")
        value = self._literal(name, field_type)
        return _compare_predicate(name, field_type, "!=" if op.text == "<>" else op.text, value)

    def _literal(self, name: str, field_type: str) -> Any:
        token = self._next("a value")
        kind, text = token.kind, token.text
        if kind == "name" and text.lower() == "null":
            return None
        if field_type == sch.BOOLEAN:
            if kind == "name" and text.lower() in ("true", "false"):
                return text.lower() == "true"
        elif field_type in sch.TEXT_TYPES:
            if kind == "string":
                return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1])
        elif field_type in sch.NUMBER_TYPES:
            if kind == "number":
                return float(text) if "." in text else int(text)
        elif field_type == sch.DATETIME:
            if kind == "datetime":
                return sch.format_datetime(sch.parse_datetime(text))
        elif field_type == sch.DATE and kind == "date":
            return date.fromisoformat(text).isoformat()
        if kind == "string" or kind in ("name", "number", "date", "datetime"):
            raise SoqlError(
                "INVALID_FIELD",
                f"value of filter criterion for field '{name}' must be of type {field_type} and should "
                f"{'' if field_type in sch.TEXT_TYPES else 'not '}be enclosed in quotes",
            )
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text}', expecting a value")


def _normalise(value: Any, field_type: str) -> Any:
    return value.lower() if isinstance(value, str) and field_type in sch.FOLDED_TEXT_TYPES else value


def _in_predicate(name: str, field_type: str, values: set[Any], negate: bool) -> Predicate:
    text = field_type in sch.FOLDED_TEXT_TYPES

    def predicate(record: Record) -> bool:
        value = record.get(name)
        if text and value is not None:
            value = value.lower()
        return (value not in values) if negate else (value in values)

    return predicate


def _compare_predicate(name: str, field_type: str, op: str, literal: Any) -> Predicate:
    if literal is None:
        if op not in ("=", "!="):
            raise SoqlError("MALFORMED_QUERY", f"invalid operator '{op}' with null for field '{name}'")
        return (lambda r: r.get(name) is None) if op == "=" else (lambda r: r.get(name) is not None)
    text = field_type in sch.FOLDED_TEXT_TYPES
    literal = _normalise(literal, field_type)

    def value_of(record: Record) -> Any:
        value = record.get(name, _MISSING)
        if value is _MISSING or value is None:
            return None
        return value.lower() if text else value

    if op == "=":
        return lambda r: value_of(r) == literal
    if op == "!=":
        return lambda r: value_of(r) != literal
    compare = {
        "<": lambda a: a < literal,
        "<=": lambda a: a <= literal,
        ">": lambda a: a > literal,
        ">=": lambda a: a >= literal,
    }[op]

    def ordered(record: Record) -> bool:
        value = value_of(record)
        return value is not None and compare(value)

    return ordered


def parse(text: str) -> Query:
    """Parse SOQL `text` into a :class:`Query`; raises :class:`SoqlError` on syntax or schema errors."""
    return _Parser(_tokenize(text)).parse()


def run_query(text: str, records: Iterable[Record]) -> list[Record]:
    """Parse `text`, run it over `records` and return the matching rows projected to the SELECTed fields."""
    query = parse(text)
    return [query.project(record) for record in query.run(records)]
