"""The rule language: triggers (``when``), conditions (``if``), actions (``then``).

Each trigger, condition and action is a mapping recognised by one key
(``sensor``, ``every``, ``actuate``, ...): the error for a mapping with none
of them names the keys that would do.
"""

from __future__ import annotations

import datetime as dt
import re
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

from gateway.config.base import Model, Name, first_key
from gateway.config.connections import check_topic_filter
from gateway.config.gestures import Gestures
from gateway.config.outbound import NotifyAction
from gateway.config.types import BinaryState, Duration, TimeOfDay, parse_binary
from gateway.templates import check_template_tree, is_template


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


def _template(value: Any) -> Any:
    check_template_tree(value)
    return value


Template = Annotated[str, AfterValidator(_template)]


def _state_template(value: str) -> str:
    if not is_template(value):
        raise ValueError("expected on, off, toggle, a level 0..1 or a {{ template }}")
    check_template_tree(value)
    return value


StateTemplate = Annotated[str, AfterValidator(_state_template)]


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

# --------------------------------------------------------------------------- actions


class ActuateAction(Model):
    """Switches an actuator; with ``for`` it switches back after that long."""

    actuate: Name = Field(description="The actuator to switch")
    state: Annotated[
        BinaryState | Literal["toggle"] | Annotated[float, Field(ge=0, le=1)] | StateTemplate,
        Field(
            union_mode="left_to_right",
            description="on, off, toggle, a level 0..1 for pwm outputs, or a template that "
            'gives one ("{{ event.payload.state }}")',
        ),
    ]
    for_: Duration | None = Field(
        None,
        alias="for",
        description="Switch back after this long; a repeat restarts the time. With while: "
        "this long after the sensor goes off",
    )
    while_: Name | None = Field(
        None,
        alias="while",
        description="Hold the state while this binary sensor is on (a PIR held high by "
        "continuous motion), then switch back `for` after it goes off",
    )

    @model_validator(mode="after")
    def _hold(self) -> ActuateAction:
        if self.while_ is not None and self.state == "toggle":
            raise ValueError("while holds a state: use on, off or a level, not toggle")
        return self

    @field_validator("state", mode="before")
    @classmethod
    def _toggle(cls, value: Any) -> Any:
        if not isinstance(value, str) or is_template(value):
            return value
        if value.strip().lower() == "toggle":
            return "toggle"
        try:
            return parse_binary(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            raise ValueError(
                f"expected on, off, toggle, a level 0..1 or a {{{{ template }}}}, got {value!r}"
            ) from None


class WebhookAction(Model):
    """Queues a signed webhook in the outbox: it is delivered even after an outage."""

    webhook: Name = Field(description="The endpoint, from webhooks:")
    event: str = Field(
        min_length=1, max_length=200, description="Event type sent as `type`, e.g. motion.detected"
    )
    data: Annotated[Any, AfterValidator(_template)] = Field(
        default_factory=dict, description="The event's data; strings may be Jinja2 templates"
    )

    @field_validator("event")
    @classmethod
    def _event_type(cls, event: str) -> str:
        if not EVENT_TYPE.fullmatch(event):
            raise ValueError(
                f"{event!r}: an event type is letters, digits, '_' and '.' (as Standard "
                "Webhooks recommends), e.g. motion.detected"
            )
        return event


EVENT_TYPE = re.compile(r"[a-zA-Z0-9_.]+")


class LogAction(Model):
    log: Template = Field(description="A message for the log (a template)")
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")


class MqttPublishAction(Model):
    """Publishes a message (also while the broker is away: sent when it is back)."""

    mqtt_publish: str = Field(description="The topic (a template)")
    payload: Annotated[Any, AfterValidator(_template)] = Field(
        "", description="Text, or a mapping/list sent as JSON; strings may be templates"
    )
    qos: Literal[0, 1, 2] = Field(1, description="QoS")
    retain: bool = Field(False, description="Retained message")

    @field_validator("mqtt_publish")
    @classmethod
    def _topic(cls, topic: str) -> str:
        check_template_tree(topic)
        if "+" in topic or "#" in topic:
            raise ValueError("a topic to publish to has no wildcards")
        return topic


class SerialWriteAction(Model):
    serial_write: Name = Field(description="The port, from serial:")
    data: Template = Field(
        description='What to write (a template), e.g. "LED {{ event.value }}\\n"'
    )


class DelayAction(Model):
    delay: Duration = Field(
        gt=0, description="Wait this long before the next action (survives a restart)"
    )


Action = Annotated[
    Annotated[ActuateAction, Tag("actuate")]
    | Annotated[WebhookAction, Tag("webhook")]
    | Annotated[LogAction, Tag("log")]
    | Annotated[MqttPublishAction, Tag("mqtt_publish")]
    | Annotated[SerialWriteAction, Tag("serial_write")]
    | Annotated[NotifyAction, Tag("notify")]
    | Annotated[DelayAction, Tag("delay")],
    Discriminator(
        first_key("actuate", "webhook", "notify", "log", "mqtt_publish", "serial_write", "delay"),
        custom_error_type="action_kind",
        custom_error_message="an action needs one of: actuate, webhook, notify, log, "
        "mqtt_publish, serial_write, delay",
    ),
]


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
    "log": LogAction,
    "mqtt_publish": MqttPublishAction,
    "serial_write": SerialWriteAction,
    "delay": DelayAction,
}
"""Union members by their tag, for error hints ("did you mean ...")."""
