"""The scenario file of ``gateway test``: what is given and what is expected."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from gateway.config.base import Model, Name
from gateway.config.rules import NumberOrBinary
from gateway.config.types import Duration
from gateway.rules.traces import Result as TraceResult

DEFAULT_START = "2026-01-15T12:00:00"
WINDOW = 1.0  # seconds either side of `at` for webhook expectations


class Given(Model):
    at: Duration = Field(0.0, description="When, from the start")
    sensor: Name | None = Field(None, description="A sensor that reads a new value ...")
    value: NumberOrBinary | None = Field(None, description="... this reading")
    hook: Name | None = Field(None, description="Or an inbound webhook that arrives ...")
    payload: Any = Field(None, description="... with this JSON body")
    query: dict[str, str] = Field(default_factory=dict, description="... and query string")
    headers: dict[str, str] = Field(default_factory=dict, description="... and headers")
    mqtt: str | None = Field(
        None,
        description="Or an MQTT message on this topic (with payload): a command on "
        "BASE/ACTUATOR/set, or what an mqtt trigger watches",
    )

    @model_validator(mode="after")
    def _one_thing(self) -> Given:
        if sum(x is not None for x in (self.sensor, self.hook, self.mqtt)) != 1:
            raise ValueError(
                "a given names a sensor (with value), a hook or an mqtt topic (with payload)"
            )
        if self.sensor is not None and self.value is None:
            raise ValueError("a sensor reading needs a value")
        return self


class Expectation(Model):
    at: Duration | None = Field(None, description="When, from the start")
    actuator: Name | None = Field(None, description="An actuator whose state is checked")
    state: NumberOrBinary | None = Field(None, description="The actuator's expected state")
    webhook: Name | None = Field(None, description="An endpoint that gets a webhook")
    event: str | None = Field(None, description="The webhook's event type")
    data: dict[str, Any] | None = Field(None, description="A subset of the webhook's data")
    mqtt: str | None = Field(None, description="A topic that gets a message")
    payload: Any = Field(None, description="The message (a subset when it is a mapping)")
    rule: Name | None = Field(None, description="A rule whose trace is checked")
    result: TraceResult | None = Field(
        None, description="The trace's result: finished, suppressed, ignored, waiting, ..."
    )
    condition: int | None = Field(
        None, ge=1, description="The condition that did not hold (1: the first)"
    )

    @model_validator(mode="after")
    def _one_thing(self) -> Expectation:
        named = [x for x in (self.actuator, self.webhook, self.mqtt, self.rule) if x is not None]
        if len(named) != 1:
            raise ValueError("an expectation names one actuator, webhook, mqtt topic or rule")
        if self.actuator is not None and (self.state is None or self.at is None):
            raise ValueError("an actuator expectation needs at and state")
        return self

    def describe(self) -> str:
        when = f"at {clock_text(self.at)}" if self.at is not None else "at any time"
        if self.rule is not None:
            what = f"a trace of rule {self.rule}" + (f" {self.result}" if self.result else "")
            cond = f" by condition {self.condition}" if self.condition is not None else ""
            return f"{what}{cond} {when}"
        if self.actuator is not None:
            return f"{self.actuator} is {shown(self.state)} {when}"
        if self.mqtt is not None:
            what = f"mqtt {self.mqtt}" + (f" {self.payload}" if self.payload is not None else "")
            return f"{what} {when}"
        what = f"webhook {self.webhook}"
        if self.event:
            what += f" {self.event}"
        if self.data:
            what += f" with {self.data}"
        return f"{what} {when}"


class Scenario(Model):
    name: str = Field(description="What the scenario shows")
    start: str = Field(DEFAULT_START, description="Local start time, ISO 8601")
    timezone: str | None = Field(None, description="IANA zone, e.g. Europe/Berlin (default: local)")
    given: list[Given] = Field(default_factory=list, description="Readings, in time order")
    expect: list[Expectation] = Field(default_factory=list, description="What must happen")
    expect_not: list[Expectation] = Field(default_factory=list, description="What must not")


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def clock_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    frac = seconds - whole
    text = f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
    return text if not frac else f"{text}+{frac * 1000:.0f}ms"
