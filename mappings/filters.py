"""The filter language of the mapping file: a fixed set of operators over named fields, no expression language.

A filter is a list of conditions that must all hold (``where:``). A condition names a field and an operator::

    - {field: activity_kind, op: eq, value: meeting}
    - {field: account.account_type, op: eq, value: Prospect}     # a related record: the activity's account
    - {field: contact.title, op: in, value: [CEO, CFO]}           # any contact the activity involved
    - {field: custom.key_account, op: is_true}                    # a custom CRM field declared under custom_fields
    - {any_of: [{field: subject, op: contains, value: Discovery}, {field: subject, op: contains, value: Demo}]}
    - {followed_by: {within_days: 60}}                            # an opportunity on the same account created after

Which fields exist depends on the records counted (activities, opportunities, accounts); ``mappings.fields`` holds
the catalogue and ``mappings.query`` compiles a filter to SQL.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from mappings.limits import Days, PrintableText, scalar_problem


class Op(StrEnum):
    eq = "eq"
    ne = "ne"
    in_ = "in"
    not_in = "not_in"
    gt = "gt"
    gte = "gte"
    lt = "lt"
    lte = "lte"
    contains = "contains"
    not_contains = "not_contains"
    starts_with = "starts_with"
    is_set = "is_set"
    is_not_set = "is_not_set"
    is_true = "is_true"
    is_false = "is_false"


NO_VALUE_OPS = {Op.is_set, Op.is_not_set, Op.is_true, Op.is_false}
LIST_OPS = {Op.in_, Op.not_in}
TEXT_OPS = {Op.contains, Op.not_contains, Op.starts_with}


class _Strict(PrintableText):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FieldCondition(_Strict):
    """One comparison of a field with a value."""

    field: str = Field(
        title="Field",
        description="A field of the counted record, `account.<field>`, `opportunity.<field>`, `contact.<field>`, "
        "`owner.<field>`, `custom.<name>` (declared under custom_fields) or `raw.<CRM field>`.",
        examples=["activity_kind", "account.account_type", "custom.key_account"],
        min_length=1,
    )
    op: Op = Field(title="Operator", description="How the field is compared.", examples=["eq", "in", "gte"])
    value: Any = Field(
        default=None,
        title="Value",
        description="What the field is compared with: text, a number, true/false or a date (a flat list of them "
        "for in and not_in). `mappings.values` checks it against the field's type.",
        examples=["call"],
    )

    @field_validator("field")
    @classmethod
    def _printable(cls, field: str) -> str:
        odd = next((c for c in field if not c.isprintable()), None)
        if odd is not None:
            raise ValueError(f"a field name is printable text; this one contains U+{ord(odd):04X}")
        return field

    @field_validator("value")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        # one value, or a flat list of them: the type of the field is checked once the field is resolved
        for item in value if isinstance(value, list) else [value]:
            problem = None if item is None and not isinstance(value, list) else scalar_problem(item)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _value_fits_op(self) -> FieldCondition:
        if self.op in NO_VALUE_OPS:
            if self.value is not None:
                raise ValueError(f"operator {self.op.value} takes no value")
        elif self.value is None:
            raise ValueError(f"operator {self.op.value} needs a value")
        elif self.op in LIST_OPS and not isinstance(self.value, list):
            raise ValueError(f"operator {self.op.value} needs a list of values, e.g. [a, b]")
        elif self.op not in LIST_OPS and isinstance(self.value, list | dict):
            raise ValueError(f"operator {self.op.value} needs a single value, not a list")
        elif self.op in TEXT_OPS and not isinstance(self.value, str):
            raise ValueError(f"operator {self.op.value} needs a text value")
        return self


class FollowedBy(_Strict):
    """The activity was followed by an opportunity on the same account, created after it ("turned into"): strictly
    later, unless ``at_or_after`` says that one created at the same instant counts too."""

    within_days: Days | None = Field(
        default=None,
        ge=1,
        title="Within days",
        description="Only opportunities created at most this many days after the activity count.",
        examples=[60],
    )
    where: list[FieldCondition] = Field(
        default_factory=list, title="Opportunity filter", description="Conditions on that opportunity's fields."
    )
    at_or_after: bool = Field(
        default=False,
        title="Same instant counts",
        description="Also count an opportunity created at the very same time as the activity (to the second, as the "
        "CRM stores it); by default it must be created after it.",
        examples=[True],
    )


class FollowedByCondition(_Strict):
    followed_by: FollowedBy = Field(title="Followed by an opportunity", description=FollowedBy.__doc__)


class AnyOf(_Strict):
    """At least one of the conditions holds."""

    any_of: list[FieldCondition] = Field(min_length=1, title="Any of", description="Alternatives (OR).")


def _condition_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "any_of" if "any_of" in value else "followed_by" if "followed_by" in value else "field"
    if isinstance(value, AnyOf):
        return "any_of"
    return "followed_by" if isinstance(value, FollowedByCondition) else "field"


# chosen by the key present, so a mistake in a field condition is reported once, not once per alternative
Condition = Annotated[
    Annotated[FieldCondition, Tag("field")]
    | Annotated[AnyOf, Tag("any_of")]
    | Annotated[FollowedByCondition, Tag("followed_by")],
    Discriminator(_condition_kind),
]


def conditions_fields(where: list[Any]) -> list[FieldCondition]:
    """Every field condition in a filter, including those inside any_of (for validation against the catalogue)."""
    out: list[FieldCondition] = []
    for condition in where:
        if isinstance(condition, FieldCondition):
            out.append(condition)
        elif isinstance(condition, AnyOf):
            out.extend(condition.any_of)
    return out
