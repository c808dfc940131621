"""Test doubles shipped with the gateway, as gpiozero ships its mock pins.

A virtual clock, actuators in memory and an outbox that records what it was
given. ``gateway test`` runs rule scenarios on them; the unit tests and the
rule benchmark use the same ones, so there is one fake of each, not three.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.inputs.payloads import decode
from gateway.rules.traces import Trace


@dataclass
class VirtualClock:
    """Seconds since the epoch that move only when told to (``now``)."""

    start: float = 1_700_000_000.0
    now: float = 0.0

    def __post_init__(self) -> None:
        self.now = self.now or self.start

    def __call__(self) -> float:
        return self.now

    @property
    def elapsed(self) -> float:
        return self.now - self.start


@dataclass
class Sent:
    """A webhook or MQTT message as recorded: when (seconds from the start), where, what."""

    time: float
    endpoint: str
    event: str
    data: Any


class MemoryActuators:
    """Actuators in memory; remembers every switch (for failure messages)."""

    def __init__(self, initial: Mapping[str, bool | float], clock: VirtualClock) -> None:
        self.states = dict(initial)
        self.clock = clock
        self.history: list[tuple[float, str, bool | float]] = []

    def names(self) -> Iterable[str]:
        return self.states.keys()

    def get(self, name: str) -> bool | float:
        return self.states[name]

    def set(self, name: str, state: bool | float) -> None:
        self.states[name] = state
        self.history.append((self.clock.elapsed, name, state))


@dataclass
class RecordingOutbox:
    """The outbox and the MQTT/serial links of a test: remembers what was sent and when."""

    clock: VirtualClock
    sent: list[Sent] = field(default_factory=list)
    published: list[Sent] = field(default_factory=list)
    written: list[tuple[str, str]] = field(default_factory=list)

    def submit(self, endpoint: str, event: str, data: Any) -> str:
        self.sent.append(Sent(self.clock.elapsed, endpoint, event, data))
        return f"msg_recorded_{len(self.sent)}"

    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> None:
        self.published.append(Sent(self.clock.elapsed, topic, "", decode(payload.encode())))

    def write_serial(self, port: str, data: str) -> None:
        self.written.append((port, data))


@dataclass
class Traced:
    """A trace as it was handed on: when, which rule, its result, the condition that failed."""

    time: float
    rule: str
    result: str
    condition: int | None  # 1-based, as the log line and the trace say it
    why: str


class TraceLog:
    """An observer keeping every trace the runtime hands on (``gateway test``)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.traced: list[Traced] = []

    def sensor_changed(self, sensor: str, value: object) -> None:
        """Not kept."""

    def actuator_switched(self, actuator: str, state: bool | float, who: str) -> None:
        """Not kept."""

    def rule_traced(self, trace: Trace) -> None:
        failed = next((i for i, c in enumerate(trace.conditions) if not c["holds"]), None)
        condition = None if failed is None else failed + 1
        self.traced.append(Traced(self.clock(), trace.rule, trace.result, condition, trace.why))
