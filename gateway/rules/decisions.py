"""What the rule engine decides: plain values the runtime carries out."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.events import Value
from gateway.rules.timerkinds import QueuedRun, Timer, TimerKind
from gateway.rules.traces import TraceStep


@dataclass(frozen=True, slots=True)
class SetActuator:
    """Switch ``actuator`` to ``state``; with ``revert_after``, switch back after that long."""

    actuator: str
    state: bool | float | str  # True/False, a pwm level, or "toggle"
    revert_after: float | None
    rule: str
    cause: str = field(default="", compare=False)
    """What fired the rule, for the audit line: ``hook hub msg_1 from 10.0.0.5``."""
    hold_while: str | None = None
    """A binary sensor: the state holds while it is on; ``revert_after`` counts from off."""
    step: TraceStep | None = field(default=None, compare=False, repr=False)
    """Where the runtime writes what came of it (the rule's trace)."""


@dataclass(frozen=True, slots=True)
class SendWebhook:
    """Queue a webhook of type ``event`` with ``data`` for ``endpoint``."""

    endpoint: str
    event: str
    data: Any
    rule: str
    step: TraceStep | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class WriteLog:
    level: int
    message: str
    rule: str
    step: TraceStep | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PublishMqtt:
    topic: str
    payload: str
    qos: int
    retain: bool
    rule: str
    step: TraceStep | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class WriteSerial:
    port: str
    data: str
    rule: str
    step: TraceStep | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Keep ``timer`` (replacing one of the same kind and key) and hand it back when due."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class Cancel:
    kind: TimerKind
    key: str


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Keep ``run`` (a queued rule's waiting run) until :class:`Dequeue` takes it."""

    run: QueuedRun


@dataclass(frozen=True, slots=True)
class Dequeue:
    run: str


Decision = (
    SetActuator
    | SendWebhook
    | WriteLog
    | PublishMqtt
    | WriteSerial
    | Schedule
    | Cancel
    | Enqueue
    | Dequeue
)


@dataclass(frozen=True)
class Snapshot:
    """What the engine may look at: current values and the local time."""

    sensors: Mapping[str, Value]
    actuators: Mapping[str, Value]
    now: dt.datetime  # aware, local time
    gateway_name: str = "edge-gateway"

    @functools.cached_property
    def time(self) -> float:
        return self.now.timestamp()
