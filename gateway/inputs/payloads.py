"""MQTT payloads as values: JSON when it parses, else text; a sensor's reading."""

from __future__ import annotations

import json
from typing import Any

from gateway import safejson
from gateway.config.connections import MqttSensor
from gateway.events import Value


def decode(payload: bytes) -> Any:
    """JSON when it parses, else the text."""
    try:
        return safejson.loads(payload)
    except safejson.JsonError:
        return payload.decode("utf-8", "replace")


def as_reading(value: Any, sensor: MqttSensor) -> Value | None:
    """``value`` as a reading of ``sensor``'s kind; None when it is not one."""
    if sensor.kind == "number":
        if isinstance(value, bool):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
        return number if safejson.finite(number) else None
    if sensor.kind == "binary":
        from gateway.config.types import parse_binary

        try:
            return parse_binary(value)
        except ValueError:
            return None
    return value if isinstance(value, str) else json.dumps(value)
