"""Request and response bodies of the sprints API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class KrGainOut(BaseModel):
    kr_key: str
    title: str
    gain: float | None = Field(description="value at the sprint's end (now while it runs) minus at its start")
    shown_gain: str


class RetrospectiveIn(BaseModel):
    improvement: str = Field(min_length=1, max_length=2_000, description="The one improvement for the next sprint")
    went_well: str | None = Field(default=None, max_length=10_000)
    carried_done: bool | None = Field(default=None, description="Was the previous sprint's improvement done?")
    note: str | None = Field(default=None, max_length=20_000)


class RetrospectiveOut(BaseModel):
    improvement: str
    went_well: str | None
    carried_done: bool | None
    note: str | None
    author: str
    recorded_at: datetime


class SprintOut(BaseModel):
    key: str
    name: str
    goal: str | None
    start: date
    end: date
    days: int
    state: str = Field(description="planned, running or ended")
    source: str = Field(description="config (the mapping file) or api")
    commitment: str | None
    committed: float | None
    achieved: float | None
    achieved_share: float | None = Field(description="achieved / committed")
    accuracy: float | None = Field(description="1 − |achieved − committed| / committed, at least 0; ended sprints")
    serves: list[KrGainOut]
    carried_improvement: str | None = Field(description="the previous sprint's improvement item")
    retrospective: RetrospectiveOut | None


class ForecastOut(BaseModel):
    sprints: int = Field(description="ended sprints with a commitment")
    mean_accuracy: float | None
    say_do: float | None = Field(description="total achieved / total committed")
    suggested_next: float | None = Field(description="achieved per day over the last 3 sprints × next sprint's days")
    next_sprint: str | None


class SprintsOut(BaseModel):
    sprints: list[SprintOut]
    current: str | None
    forecast: ForecastOut


class SprintAdded(BaseModel):
    version: int = Field(description="the mapping version that added the sprint")
    sprint: SprintOut
