"""Request and response bodies of the HTTP API.

Requests are validated with these models; responses are described by them
in the OpenAPI document (and a test checks the answers against it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.config.types import BinaryState, Duration


class _Model(BaseModel):
    """Validators built on first use, not at import (start-up time; most are only
    needed when their route is first called)."""

    model_config = ConfigDict(defer_build=True)


class SensorWrite(_Model):
    """Body of ``POST /api/v1/sensors/{id}``."""

    model_config = ConfigDict(extra="forbid", title="SensorWrite")
    value: bool | float | str = Field(description="on/off for binary sensors, else a number")


class ActuatorWrite(_Model):
    """Body of ``POST /api/v1/actuators/{id}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, title="ActuatorWrite")
    state: BinaryState | Literal["toggle"] | Annotated[float, Field(ge=0, le=1)] = Field(
        description="on, off, toggle, or a level 0..1 for pwm outputs"
    )
    for_: Annotated[Duration | None, Field(alias="for")] = Field(
        None, description="Switch back after this long, e.g. 30s"
    )


class SensorView(_Model):
    id: str
    kind: str
    value: bool | int | float | str | None = Field(
        description="The last reading (null: none yet, or unavailable)"
    )
    state: Literal["on", "off", "unavailable"] | None = Field(
        None,
        description="on/off for on/off sensors; unavailable for any sensor whose input is "
        "gone or that has not read within its stale_after",
    )
    available: bool = Field(True, description="false: its input is gone, or its reading stale")
    gpio: int | None = None
    group: str | None = Field(None, description="The split MQTT sensor it is a member of")
    last_updated: str | None = Field(None, description="The last reading (ISO 8601)")
    last_changed: str | None = Field(None, description="The last change of value (ISO 8601)")


class SensorAccepted(_Model):
    id: str
    value: bool | int | float | str
    accepted: bool


class Deferred(_Model):
    state: Literal["on", "off"]
    at: str = Field(description="When min_on/min_off ends and it switches (ISO 8601)")


class ActuatorView(_Model):
    id: str
    kind: str
    gpio: int | None = None
    state: Literal["on", "off"]
    on: bool
    level: float | None = Field(None, description="pwm outputs: the level 0..1")
    until: str | None = Field(
        description="When the next switch happens (ISO 8601, UTC, ms: 2026-01-15T21:05:00.000Z)"
    )
    deferred: Deferred | None = Field(
        None, description="A switch asked for inside min_on/min_off, made when it ends"
    )


class StatusView(_Model):
    name: str
    version: str
    uptime: float
    simulate: bool
    inputs: dict[str, dict[str, Any]] = Field(
        description="Each input: its type, state and counters"
    )
    outbox: dict[str, Any]
    timers: int


class OutboxView(_Model):
    pending: int
    dead: int
    oldest_age: float | None
    link: Literal["up", "down"]
    endpoints: dict[str, dict[str, Any]]
    counters: dict[str, int]
    recent_failures: list[dict[str, Any]]


class MessageQuery(_Model):
    """Query of ``GET /api/v1/outbox/messages``."""

    model_config = ConfigDict(extra="forbid", title="MessageQuery")
    state: Literal["pending", "dead"] | None = None
    endpoint: str | None = None
    limit: int = Field(100, ge=1, le=1000)


class MessageSummary(_Model):
    seq: int
    id: str
    endpoint: str
    event: str
    created: float = Field(description="Unix time it was queued")
    attempts: int
    next_try: float = Field(description="Unix time of the next attempt")
    state: Literal["pending", "dead"]
    last_status: int | None = Field(description="HTTP status of the last attempt (0: no answer)")
    last_error: str | None


class MessageList(_Model):
    messages: list[MessageSummary]


class Attempt(_Model):
    time: float
    duration: float
    status: int
    error: str | None
    response: str | None


class ShapedRequest(_Model):
    method: str
    url: str = Field(description="As rendered when queued (a service's token as @@token@@)")
    content_type: str
    headers: dict[str, str] = Field(default_factory=dict, description="Templated headers")


class MessageDetail(MessageSummary):
    body: str = Field(description="The exact bytes sent, as text")
    request: ShapedRequest | None = Field(
        None, description="A shaped endpoint's request; null: a Standard Webhooks POST"
    )
    first_try: float | None
    attempts_log: list[Attempt] = Field(description="Failed attempts and a final success")


class HookAccepted(_Model):
    id: str = Field(description="The delivery's id (webhook-id, X-GitHub-Delivery, or ours)")
    duplicate: bool = Field(False, description="true: seen before, not acted on again")


class Health(_Model):
    status: Literal["ok", "ready"]


class RetryAccepted(_Model):
    id: str
    state: Literal["pending"]


class EndpointEnabled(_Model):
    endpoint: str
    disabled: Literal[False]


class ErrorDetail(_Model):
    code: str
    message: str


class ErrorBody(_Model):
    error: ErrorDetail
