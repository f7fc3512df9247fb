"""Pipeline-hygiene rules as sales ops configure them: built-in, parameterised, plus a custom filter rule.

Each rule judges one open opportunity of the team. ``mappings.hygiene`` turns a rule into a query for the
opportunities violating it and renders each violation as a sentence a rep understands.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from mappings.fields import CustomField, RecordType
from mappings.filter_checks import check_filter
from mappings.filters import Condition
from mappings.limits import MAX_RULES, Count, Days, Number, PrintableText

_NAME = Field(
    default=None,
    pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
    title="Rule name",
    description="Defaults to the rule type; needed when one type is used twice.",
)


class _Rule(PrintableText):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str | None = _NAME

    @property
    def rule_key(self) -> str:
        return self.name or str(getattr(self, "type"))  # noqa: B009 (type is declared on each subclass)

    def check(self, stages: list[str], custom: dict[str, CustomField]) -> list[str]:
        """Problems that need the rest of the file (stage names, custom fields)."""
        return []


class CloseDatePast(_Rule):
    """The close date of an open opportunity lies in the past."""

    type: Literal["close_date_past"] = "close_date_past"
    grace_days: Days = Field(default=0, ge=0, title="Days of grace", examples=[0])


class NoNextStep(_Rule):
    """An open opportunity has no next step."""

    type: Literal["no_next_step"] = "no_next_step"


class NoActivity(_Rule):
    """No activity logged on the opportunity for N days."""

    type: Literal["no_activity"] = "no_activity"
    days: Days = Field(ge=1, title="Days without activity", examples=[14])


class StuckInStage(_Rule):
    """In its current stage longer than N days, or longer than k × the team's median for that stage."""

    type: Literal["stuck_in_stage"] = "stuck_in_stage"
    days: Days | None = Field(default=None, ge=1, title="Days in stage", examples=[30])
    median_factor: Number | None = Field(default=None, gt=0, title="× team median for the stage", examples=[2])

    @model_validator(mode="after")
    def _one(self) -> StuckInStage:
        if (self.days is None) == (self.median_factor is None):
            raise ValueError("give exactly one of days or median_factor")
        return self


class CloseDatePushed(_Rule):
    """The close date was moved later N times or more."""

    type: Literal["close_date_pushed"] = "close_date_pushed"
    times: Count = Field(ge=1, title="Pushes", examples=[3])


class MissingAmount(_Rule):
    """No amount from a given stage on (or in any stage)."""

    type: Literal["missing_amount"] = "missing_amount"
    from_stage: str | None = Field(default=None, title="From stage", examples=["Needs Analysis"])

    def check(self, stages: list[str], custom: dict[str, CustomField]) -> list[str]:
        if self.from_stage is not None and self.from_stage not in stages:
            known = ", ".join(stages) or "none listed"
            return [f"from_stage {self.from_stage!r} is not in hygiene.stages (listed: {known})"]
        return []


class SingleThreaded(_Rule):
    """Fewer than N contacts (contact roles) on the opportunity."""

    type: Literal["single_threaded"] = "single_threaded"
    min_contacts: Count = Field(default=2, ge=1, title="Minimum contacts", examples=[2])


class ProbabilityMismatch(_Rule):
    """The probability (0–100) differs from the one expected for the stage."""

    type: Literal["probability_mismatch"] = "probability_mismatch"
    expected: dict[str, Number] = Field(
        min_length=1,
        max_length=MAX_RULES,
        title="Expected probability per stage",
        examples=[{"Prospecting": 10, "Negotiation/Review": 90}],
    )
    tolerance: float = Field(default=0, ge=0, le=100, title="Allowed difference (points)")


class CustomRule(_Rule):
    """A violation whenever an open opportunity matches the filter."""

    type: Literal["custom"] = "custom"
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", title="Rule name", examples=["big-deal-no-exec"])
    message: str = Field(min_length=1, title="Sentence shown to the rep", examples=["Large deal without an executive"])
    where: list[Condition] = Field(min_length=1, title="Filter on the opportunity")

    def check(self, stages: list[str], custom: dict[str, CustomField]) -> list[str]:
        return [f"where[{n}]: {p}" for n, p in check_filter(self.where, RecordType.opportunity, custom)]


HygieneRule = Annotated[
    CloseDatePast
    | NoNextStep
    | NoActivity
    | StuckInStage
    | CloseDatePushed
    | MissingAmount
    | SingleThreaded
    | ProbabilityMismatch
    | CustomRule,
    Field(discriminator="type"),
]
