"""Things that happened, as immutable values. Inputs make them; rules read them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Value = bool | float | int | str
"""A sensor reading: on/off as a bool, a number, or a text."""

UNAVAILABLE = "unavailable"
"""The state of a sensor whose input is gone or that has not read within its
``stale_after``: what rules (``to: unavailable``) and templates see."""


@dataclass(frozen=True, slots=True)
class SensorChanged:
    """A sensor's value changed (or was read for the first time: ``previous`` is None)."""

    sensor: str
    value: Value
    previous: Value | None
    time: float  # seconds since the epoch
    source: str  # "gpio", "api", "scenario", ...
    group: str | None = None  # the split MQTT sensor this one is a member of


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
class MqttReceived:
    """A message arrived on a subscribed MQTT topic."""

    topic: str
    payload: Any  # JSON-decoded when it parses, else the text
    time: float


@dataclass(frozen=True, slots=True)
class GatewayStarted:
    """The gateway finished starting up (fires ``when: {startup: true}`` rules)."""

    time: float


Event = SensorChanged | HookReceived | MqttReceived | GatewayStarted


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching: ``+`` is one level, ``#`` the rest.

    As MQTT 3.1.1 section 4.7.2 (and paho's ``topic_matches_sub``, which a test
    compares it with): a filter starting with a wildcard does not match topics
    starting with ``$`` (``$SYS/...``). Ours avoids paho's per-call matcher tree
    on the path every message takes.
    """
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    parts, levels = pattern.split("/"), topic.split("/")
    for i, part in enumerate(parts):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(parts) == len(levels)
