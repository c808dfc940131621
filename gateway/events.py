"""Things that happened, as immutable values. Inputs make them; rules read them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Value = bool | float | int | str
"""A sensor reading: on/off as a bool, a number, or a text."""


@dataclass(frozen=True, slots=True)
class SensorChanged:
    """A sensor's value changed (or was read for the first time: ``previous`` is None)."""

    sensor: str
    value: Value
    previous: Value | None
    time: float  # seconds since the epoch
    source: str  # "gpio", "api", "scenario", ...


@dataclass(frozen=True, slots=True)
class HookReceived:
    """A verified request arrived at ``POST /hooks/{hook}``."""

    hook: str
    id: str  # the sender's webhook-id / delivery id, or one we made up
    payload: Any  # the JSON body
    query: dict[str, str]
    headers: dict[str, str]  # only the headers the hook's config selects
    time: float
    source: str  # the client address


@dataclass(frozen=True, slots=True)
class GatewayStarted:
    """The gateway finished starting up (fires ``when: {startup: true}`` rules)."""

    time: float


Event = SensorChanged | HookReceived | GatewayStarted
