"""Bodies of the API that looks inside: rules and their traces, history, log level.

Answers are built by :class:`gateway.rulecontrol.RuleControl` and the
recorder; these models describe them in the OpenAPI document.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TraceStepView(BaseModel):
    action: str = Field(description="The action: actuate hallway_light on for 120s")
    at: str = Field(description="When it was carried out (ISO 8601)")
    outcome: str = Field(description="What came of it: switched on, queued as ..., skipped: ...")
    ok: bool


class ConditionView(BaseModel):
    condition: str = Field(description="The condition and what it compared")
    holds: bool


class TraceView(BaseModel):
    id: str
    rule: str
    trigger: str = Field(description="What fired it: door=on (gpio), hook hub msg_1 from ...")
    event: dict[str, object]
    result: Literal[
        "running", "waiting", "queued", "finished", "error", "suppressed", "ignored", "cancelled"
    ]
    why: str = Field(description="For suppressed, ignored, waiting, cancelled and error")
    conditions: list[ConditionView] = Field(description="Those looked at, in order")
    steps: list[TraceStepView]
    started: str
    ended: str | None
    duration: float | None = Field(description="Seconds from the trigger to the end")
    who: str | None = Field(description="Who asked, for a run from the API")


class RuleView(BaseModel):
    id: str
    description: str | None
    enabled: bool
    mode: str
    last_triggered: str | None = Field(description="When it last started a run (ISO 8601)")
    last_result: str | None = Field(description="The result of its last trace")
    last_why: str | None = None
    running: int = Field(description="Runs going or waiting in a delay")
    queued: int = Field(description="Runs waiting their turn (mode queued)")
    fired: int = Field(description="Runs started since the gateway started")
    suppressed: int = Field(description="Triggers a condition or cooldown suppressed")


class TraceList(BaseModel):
    rule: str
    traces: list[TraceView] = Field(description="Newest first")


class RuleEnabled(BaseModel):
    id: str
    enabled: bool


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: float | str | None = Field(
        None, description="ISO 8601 or Unix seconds (default: a day before until)"
    )
    until: float | str | None = Field(None, description="ISO 8601 or Unix seconds (default: now)")
    limit: int = Field(5000, ge=1, le=50_000, description="The newest this many points")


class Point(BaseModel):
    t: str = Field(description="The reading's time, or the start of its window (ISO 8601)")
    value: float | None = Field(
        description="The mean over the window; 1/0 for on/off; null: unavailable"
    )
    min: float | None
    max: float | None


class SwitchPoint(BaseModel):
    t: str
    state: float = Field(description="1 on, 0 off, or the pwm level")
    who: str


class SensorHistory(BaseModel):
    id: str
    since: str
    until: str
    points: list[Point]


class ActuatorHistory(BaseModel):
    id: str
    since: str
    until: str
    switches: list[SwitchPoint]


class LogLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: Literal["debug", "info", "warning", "error"]
    logger: str | None = Field(
        None, description="One logger (gateway.inputs.mqtt); default: the whole gateway"
    )
