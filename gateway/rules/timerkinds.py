"""What a timer is: its kinds, typed payloads, and the keys that name it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class TimerKind(enum.StrEnum):
    REVERT = "revert"  # an actuator switched "for" a while switches back
    MAX_ON = "max_on"  # an actuator's safety limit
    DEFER = "defer"  # a switch asked for inside min_on/min_off, made when the window ends
    FOR = "for"  # a sensor trigger's state must hold this long
    RUN = "run"  # a run waiting in a ``delay`` action
    COOLDOWN = "cooldown"  # a rule may not fire again before
    EVERY = "every"  # clock triggers: recomputed at start, never saved
    AT = "at"


ACTUATOR_KINDS = frozenset({TimerKind.REVERT, TimerKind.MAX_ON, TimerKind.DEFER})
CLOCK_KINDS = frozenset({TimerKind.EVERY, TimerKind.AT})


@dataclass(frozen=True, slots=True)
class Switch:
    """``revert``, ``max_on`` and ``defer``: switch the actuator to ``state``."""

    state: bool | float
    by: str = ""  # who set it, for the log line when it fires
    was: bool | float | None = None  # revert: the state until then (restored after a restart)
    lasts: float | None = None  # defer: the ``for`` of the switch, counted once it is made
    hold: str | None = None  # defer: the ``while`` sensor of the switch


@dataclass(frozen=True, slots=True)
class Step:
    """A rule's timer: ``index`` is the trigger (for, every, at) or the next action (run)."""

    rule: str
    index: int = 0
    event: dict[str, Any] | None = None  # the event that fired the rule (for, run)


@dataclass(frozen=True, slots=True)
class Timer:
    """At ``due``, the timer of ``kind`` for ``key`` (an actuator, a trigger, a run) fires."""

    kind: TimerKind
    key: str
    due: float
    payload: Switch | Step
    durable: bool = True  # clock triggers are not: they are recomputed at start

    @property
    def slot(self) -> tuple[TimerKind, str]:
        return self.kind, self.key

    @property
    def rule(self) -> str | None:
        return self.payload.rule if isinstance(self.payload, Step) else None


@dataclass(frozen=True, slots=True)
class QueuedRun:
    """A run of a ``mode: queued`` rule waiting for the one before it to finish."""

    id: str
    rule: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hold:
    """``actuator`` keeps its state while ``sensor`` is on; ``delay`` after the sensor
    goes off it switches to ``back`` (``actuate: ..., while: sensor, for: delay``)."""

    actuator: str
    sensor: str
    delay: float
    back: bool | float
    by: str


# ---------------------------------------------------------------------- keys


def trigger_key(rule: str, index: int) -> str:
    """The key of a rule's trigger (its ``for`` and clock timers)."""
    return f"{rule}#{index}"


def run_id(rule: str, number: int) -> str:
    return f"{rule}:{number}"


def run_number(run: str) -> int:
    """The number in a run id (0 if it has none)."""
    number = run.rpartition(":")[2]
    return int(number) if number.isdigit() else 0
