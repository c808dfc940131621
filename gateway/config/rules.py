"""The rule language: triggers (``when``), conditions (``if``) and the rule; its
actions (``then``) are in :mod:`gateway.config.actions`.

Each trigger, condition and action is a mapping recognised by one key
(``sensor``, ``every``, ``actuate``, ...): the error for a mapping with none
of them names the keys that would do.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from gateway.config.actions import (
    Action,
    ActuateAction,
    DelayAction,
    LogAction,
    MqttPublishAction,
    SerialWriteAction,
    Template,
    WebhookAction,
)
from gateway.config.base import Model, Name, first_key
from gateway.config.connections import check_topic_filter
from gateway.config.gestures import Gestures
from gateway.config.outbound import NotifyAction
from gateway.config.types import Duration, TimeOfDay, parse_binary


def _binary_word(value: Any) -> Any:
    """Quoted "on"/"off" (and true/false, high/low, yes/no) mean the same as bare on/off."""
    if isinstance(value, str) and value.strip().lower() in _BINARY_WORDS:
        return parse_binary(value)
    return value


_BINARY_WORDS = {"on", "off", "true", "false", "high", "low", "yes", "no"}

NumberOrBinary = Annotated[
    bool | float | str,
    BeforeValidator(_binary_word),
    Field(description="A value: on/off for binary sensors, a number or a text otherwise"),
]


# --------------------------------------------------------------------------- triggers


class SensorTrigger(Gestures):
    """Fires when a sensor's value changes the way described.

    With no ``to``/``from``/``above``/``below``, any change fires it.
    """

    sensor: Name = Field(description="The sensor to watch")
    to: NumberOrBinary | None = Field(None, description="Fires when the value becomes this")
    from_: NumberOrBinary | None = Field(
        None, alias="from", description="... and only when it was this before"
    )
    above: float | None = Field(None, description="Fires when the value rises above this")
    below: float | None = Field(None, description="Fires when the value falls below this")
    hysteresis: float | None = Field(
        None,
        gt=0,
        description="With above/below: the value must leave the range by this much before "
        "the trigger can fire again (no chatter around the threshold)",
    )
    changes: bool | float | None = Field(
        None,
        description="true: any change fires; a number: a change of at least this much since "
        "the trigger last fired",
    )
    for_: Duration | None = Field(
        None,
        alias="for",
        gt=0,
        description="The new state must hold this long; a reading that breaks it cancels",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SensorTrigger:
        edge = self.to is not None or self.from_ is not None
        level = self.above is not None or self.below is not None
        if self.gesture in ("click", "double_click"):
            if edge or level or self.changes not in (None, False) or self.for_ is not None:
                raise ValueError("a gesture stands alone: no to/from/above/below/changes/for")
            return self
        if edge and level:
            raise ValueError("use to/from or above/below in one trigger, not both")
        if self.changes not in (None, False) and (edge or level):
            raise ValueError("changes cannot be combined with to/from/above/below")
        if self.above is not None and self.below is not None and self.above >= self.below:
            raise ValueError("above must be less than below (the value must fit between them)")
        if self.hysteresis is not None and not level:
            raise ValueError("hysteresis needs above or below")
        if self.for_ is not None and self.to is None and not level:
            raise ValueError("for needs a state to hold: to, above or below")
        return self


class HookTrigger(Model):
    hook: Name = Field(description="Fires on each verified request to POST /hooks/NAME")


class MqttTrigger(Model):
    mqtt: Annotated[str, AfterValidator(check_topic_filter)] = Field(
        description="Fires on every message on this topic filter (+ and # work)"
    )


class StartupTrigger(Model):
    startup: Literal[True] = Field(description="Fires once when the gateway starts")


class EveryTrigger(Model):
    every: Duration = Field(
        gt=0, description="Fires at every multiple of this interval (10m: :00, :10, :20 ...)"
    )


class AtTrigger(Model):
    at: TimeOfDay = Field(description='Fires every day at this local time, e.g. "07:30"')


Trigger = Annotated[
    Annotated[SensorTrigger, Tag("sensor")]
    | Annotated[HookTrigger, Tag("hook")]
    | Annotated[MqttTrigger, Tag("mqtt")]
    | Annotated[StartupTrigger, Tag("startup")]
    | Annotated[EveryTrigger, Tag("every")]
    | Annotated[AtTrigger, Tag("at")],
    Discriminator(
        first_key("sensor", "hook", "mqtt", "startup", "every", "at"),
        custom_error_type="trigger_kind",
        custom_error_message="a trigger needs one of: sensor, hook, mqtt, every, at, startup",
    ),
]

# --------------------------------------------------------------------------- conditions

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TimeWindow(Model):
    after: TimeOfDay | None = Field(None, description='From this local time, e.g. "18:00"')
    before: TimeOfDay | None = Field(
        None, description="Until this local time; earlier than after spans midnight"
    )
    weekdays: list[Weekday] | None = Field(None, description="Only on these days: mon..sun")

    def contains(self, moment: dt.datetime) -> bool:
        """Whether a local time falls in the window (a window may span midnight)."""
        now = moment.time()
        day = moment
        if self.after is not None and self.before is not None and self.after > self.before:
            inside = now >= self.after or now < self.before
            if now < self.before:  # the morning half belongs to the window that began yesterday
                day = moment - dt.timedelta(days=1)
        else:
            inside = (self.after is None or now >= self.after) and (
                self.before is None or now < self.before
            )
        if inside and self.weekdays is not None:
            inside = WEEKDAYS[day.weekday()] in self.weekdays
        return inside


class TimeCondition(Model):
    time: TimeWindow = Field(description="Holds when the local time is in this window")


class SensorCondition(Model):
    sensor: Name = Field(description="The sensor to test")
    is_: NumberOrBinary | None = Field(None, alias="is", description="Holds when equal to this")
    above: float | None = Field(None, description="Holds when the value is above this")
    below: float | None = Field(None, description="Holds when the value is below this")

    @model_validator(mode="after")
    def _something(self) -> SensorCondition:
        if self.is_ is None and self.above is None and self.below is None:
            raise ValueError("a sensor condition needs is, above or below")
        return self


class TemplateCondition(Model):
    template: Template = Field(description='Holds when the template is true: "{{ ... }}"')


class AnyCondition(Model):
    any: Annotated[list[Condition], Field(min_length=1)] = Field(
        description="Holds when at least one of these holds"
    )


class NotCondition(Model):
    not_: Condition | list[Condition] = Field(
        alias="not", description="Holds when none of these holds"
    )


Condition = Annotated[
    Annotated[TimeCondition, Tag("time")]
    | Annotated[SensorCondition, Tag("sensor")]
    | Annotated[TemplateCondition, Tag("template")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")],
    Discriminator(
        first_key("time", "sensor", "template", "any", "not"),
        custom_error_type="condition_kind",
        custom_error_message="a condition needs one of: time, sensor, template, any, not",
    ),
]

AnyCondition.model_rebuild()
NotCondition.model_rebuild()


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


class Rule(Model):
    """When a trigger fires and every condition holds, run the actions in order."""

    id: Name = Field(description="A unique name for the rule, shown in logs")
    description: str = Field("", description="What the rule is for")
    enabled: bool = Field(True, description="false keeps the rule but never runs it")
    when: Annotated[list[Trigger], Field(min_length=1)] = Field(
        description="One trigger or a list (any of them fires the rule)"
    )
    if_: list[Condition] = Field(
        default_factory=list, alias="if", description="Conditions that must all hold"
    )
    then: Annotated[list[Action], Field(min_length=1)] = Field(description="Actions, in order")
    mode: Literal["single", "restart", "queued", "parallel"] = Field(
        "single",
        description="A trigger while the rule still runs (in a delay): single ignores it, "
        "restart starts over, queued runs it afterwards, parallel runs both",
    )
    max_runs: int = Field(10, ge=1, le=100, description="Most queued or parallel runs")
    cooldown: Duration | None = Field(
        None, description="After running, ignore triggers for this long"
    )

    @field_validator("when", "if_", "then", mode="before")
    @classmethod
    def _one_or_list(cls, value: Any) -> Any:
        return _as_list(value)


TAGGED_RULE_MODELS: dict[str, type[Model]] = {
    "hook": HookTrigger,
    "startup": StartupTrigger,
    "every": EveryTrigger,
    "at": AtTrigger,
    "time": TimeCondition,
    "template": TemplateCondition,
    "any": AnyCondition,
    "not": NotCondition,
    "actuate": ActuateAction,
    "webhook": WebhookAction,
    "notify": NotifyAction,
    "log": LogAction,
    "mqtt_publish": MqttPublishAction,
    "serial_write": SerialWriteAction,
    "delay": DelayAction,
}
"""Union members by their tag, for error hints ("did you mean ...")."""
