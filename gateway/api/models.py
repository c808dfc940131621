"""Request and response bodies of the HTTP API.

Requests are validated with these models; responses are described by them
in the OpenAPI document (and a test checks the answers against it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.config.types import BinaryState, Duration


class SensorWrite(BaseModel):
    """Body of ``POST /api/v1/sensors/{id}``."""

    model_config = ConfigDict(extra="forbid", title="SensorWrite")
    value: bool | float | str = Field(description="on/off for binary sensors, else a number")


class ActuatorWrite(BaseModel):
    """Body of ``POST /api/v1/actuators/{id}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, title="ActuatorWrite")
    state: BinaryState | Literal["toggle"] | Annotated[float, Field(ge=0, le=1)] = Field(
        description="on, off, toggle, or a level 0..1 for pwm outputs"
    )
    for_: Annotated[Duration | None, Field(alias="for")] = Field(
        None, description="Switch back after this long, e.g. 30s"
    )


class SensorView(BaseModel):
    id: str
    kind: str
    value: bool | float | str | None = Field(description="The last reading (null: none yet)")
    state: Literal["on", "off"] | None = Field(None, description="on/off sensors only")
    gpio: int | None = None


class SensorAccepted(BaseModel):
    id: str
    value: bool | float | str
    accepted: bool


class ActuatorView(BaseModel):
    id: str
    kind: str
    gpio: int | None = None
    state: Literal["on", "off"]
    on: bool
    level: float | None = Field(None, description="pwm outputs: the level 0..1")
    until: str | None = Field(description="When a pending switch-back happens (ISO 8601)")


class StatusView(BaseModel):
    name: str
    version: str
    uptime: float
    simulate: bool
    inputs: dict[str, dict[str, str]]
    outbox: dict[str, Any]
    timers: int


class OutboxView(BaseModel):
    pending: int
    dead: int
    oldest_age: float | None
    link: Literal["up", "down"]
    endpoints: dict[str, dict[str, Any]]
    counters: dict[str, int]
    recent_failures: list[dict[str, Any]]


class HookAccepted(BaseModel):
    id: str = Field(description="The delivery's id (webhook-id, X-GitHub-Delivery, or ours)")
    duplicate: bool = Field(False, description="true: seen before, not acted on again")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail
