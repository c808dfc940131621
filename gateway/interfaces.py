"""The seams between the rules and the world: what the runtime drives.

The daemon passes real drivers (GPIO pins, the SQLite outbox, the MQTT and
serial connections); ``gateway test`` and the unit tests pass the memory
doubles of :mod:`gateway.testing`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from gateway.events import Value
from gateway.rules.traces import Trace

_LOG = logging.getLogger(__name__)


class Actuators(Protocol):
    """The actuators, whatever drives them."""

    def names(self) -> Iterable[str]: ...
    def get(self, name: str) -> bool | float: ...
    def set(self, name: str, state: bool | float) -> None: ...


class WebhookSink(Protocol):
    """Where webhook decisions go (the outbox)."""

    def submit(self, endpoint: str, event: str, data: Any) -> str: ...


class Observer(Protocol):
    """Told of every change the outside may want to see (MQTT state topics, the
    event stream, the history): a sensor's new value, an actuator's new state and
    who asked, a rule's trace as it changes (carried out, waiting, finished)."""

    def sensor_changed(self, sensor: str, value: Value) -> None: ...
    def actuator_switched(self, actuator: str, state: bool | float, who: str) -> None: ...
    def rule_traced(self, trace: Trace) -> None: ...


class HubLink(Protocol):
    """The gateway's own side of the broker, as the MQTT link sees it (``gateway.hub``)."""

    def command_topics(self) -> Mapping[str, str]: ...
    def discovery_filters(self) -> list[str]: ...
    def on_connect(self) -> list[tuple[str, str]]: ...
    def seen(self, topic: str, payload: bytes) -> None: ...
    def command(self, actuator: str, payload: bytes, topic: str) -> None: ...


class Links(Protocol):
    """MQTT and serial ports, for mqtt_publish and serial_write."""

    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> None: ...
    def write_serial(self, port: str, data: str) -> None: ...


class NoLinks:
    """For a config without MQTT or serial ports (references are checked at load)."""

    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> None:
        _LOG.error("no MQTT broker is configured: %s not published", topic)

    def write_serial(self, port: str, data: str) -> None:
        _LOG.error("no serial port %s is configured", port)
