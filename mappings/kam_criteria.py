"""Qualitative key-account criteria: derived from activities, or assessed by the KAM.

A KAM is credited for the state of the relationship (contacts met, executive access, account plan reviewed),
independent of the revenue they only partly control.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from mappings.fields import CustomField, RecordType
from mappings.filter_checks import check_filter
from mappings.filters import Condition
from mappings.limits import Count, Days, PrintableText

ActivityKindName = Literal["call", "email", "meeting", "task", "note"]


class _Criterion(PrintableText):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", title="Key", examples=["three-contacts"])
    title: str = Field(min_length=1, title="Criterion", examples=["Met at least 3 contacts in the last 90 days"])

    def check(self, custom: dict[str, CustomField]) -> list[str]:
        return []


class DistinctContacts(_Criterion):
    """At least N distinct contacts of the account involved in activities in the last D days."""

    type: Literal["distinct_contacts"] = "distinct_contacts"
    min: Count = Field(default=3, ge=1, title="Distinct contacts", examples=[3])
    days: Days = Field(default=90, ge=1, title="In the last days", examples=[90])
    kinds: list[ActivityKindName] = Field(default=["meeting", "call"], min_length=1, max_length=5)


class ActivityOnAccount(_Criterion):
    """At least N activities on the account matching a filter, in the last D days or (default) this cycle."""

    type: Literal["activity"] = "activity"
    where: list[Condition] = Field(min_length=1, title="Activity filter")
    min_count: Count = Field(default=1, ge=1, title="At least")
    days: Days | None = Field(default=None, ge=1, title="In the last days (default: this cycle)")

    def check(self, custom: dict[str, CustomField]) -> list[str]:
        return [f"where[{n}]: {p}" for n, p in check_filter(self.where, RecordType.activity, custom)]


class TaskCompleted(_Criterion):
    """A task whose subject contains the text was completed, in the last D days or (default) this cycle."""

    type: Literal["task_completed"] = "task_completed"
    subject: str = Field(min_length=1, title="Subject contains", examples=["Account plan"])
    days: Days | None = Field(default=None, ge=1, title="In the last days (default: this cycle)")


class Assessed(_Criterion):
    """The KAM assesses it (met / partly / not met, with comment): ``okrsync kam assess``."""

    type: Literal["assessed"] = "assessed"


KamCriterion = Annotated[DistinctContacts | ActivityOnAccount | TaskCompleted | Assessed, Field(discriminator="type")]
