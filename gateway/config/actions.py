"""A rule's actions (``then``): actuate, webhook, notify, log, mqtt_publish,
serial_write, delay. Each is a mapping recognised by its key."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, field_validator, model_validator

from gateway.config.base import Model, Name, first_key
from gateway.config.outbound import NotifyAction
from gateway.config.types import BinaryState, Duration, parse_binary
from gateway.templates import check_template_tree, is_template


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
