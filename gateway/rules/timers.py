"""Timers that survive restarts: auto-off deadlines, safety limits, and what rules wait for.

A timer is a deadline (seconds since the epoch, wall-clock), a kind, and a
typed payload. Runs waiting their turn in a ``queued`` rule are not timers
(they wait for a turn, not for a time): the table keeps them as a queue.
Both are saved to ``timers.json`` in the state directory (written to a
temporary file, fsynced, renamed: a power cut leaves the old or the new
table, never half of one), at most once per :meth:`TimerTable.batch`, so
one event costs one fsync however many timers it sets. After a restart, a
timer due at 21:05 fires at 21:05, or at once if that time has passed.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway import safejson

_LOG = logging.getLogger(__name__)

FILE_VERSION = 2


class TimerKind(enum.StrEnum):
    REVERT = "revert"  # an actuator switched "for" a while switches back
    MAX_ON = "max_on"  # an actuator's safety limit
    FOR = "for"  # a sensor trigger's state must hold this long
    RUN = "run"  # a run waiting in a ``delay`` action
    COOLDOWN = "cooldown"  # a rule may not fire again before
    EVERY = "every"  # clock triggers: recomputed at start, never saved
    AT = "at"


ACTUATOR_KINDS = frozenset({TimerKind.REVERT, TimerKind.MAX_ON})
CLOCK_KINDS = frozenset({TimerKind.EVERY, TimerKind.AT})


@dataclass(frozen=True, slots=True)
class Switch:
    """``revert`` and ``max_on``: switch the actuator to ``state``."""

    state: bool | float
    by: str = ""  # who set it, for the log line when it fires
    was: bool | float | None = None  # revert: the state until then (restored after a restart)


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


# ---------------------------------------------------------------------- the table


class TimerTable:
    """Pending timers and queued runs, optionally saved to a file."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._timers: dict[tuple[TimerKind, str], Timer] = {}
        self._queued: dict[str, QueuedRun] = {}
        self._batches = 0
        self._dirty = False
        if path is not None:
            self._timers, self._queued = _load(path)

    def __len__(self) -> int:
        return len(self._timers)

    def __iter__(self) -> Iterator[Timer]:
        return iter(sorted(self._timers.values(), key=lambda t: t.due))

    def batch(self) -> TimerTable:
        """``with table.batch():`` changes inside are saved once, at the end of the
        outermost batch (a plain context manager: this is on every event's path)."""
        return self

    def __enter__(self) -> None:
        self._batches += 1

    def __exit__(self, *exc: object) -> None:
        self._batches -= 1
        if not self._batches and self._dirty:
            self._save()

    def get(self, kind: TimerKind, key: str) -> Timer | None:
        return self._timers.get((kind, key))

    def set(self, timer: Timer) -> None:
        old = self._timers.get(timer.slot)
        self._timers[timer.slot] = timer
        if timer.durable or (old is not None and old.durable):
            self._changed()

    def cancel(self, kind: TimerKind, key: str) -> None:
        timer = self._timers.pop((kind, key), None)
        if timer is not None and timer.durable:
            self._changed()

    def next_due(self) -> float | None:
        return min((t.due for t in self._timers.values()), default=None)

    def pop_due(self, now: float) -> list[Timer]:
        due = sorted((t for t in self._timers.values() if t.due <= now), key=lambda t: t.due)
        for timer in due:
            del self._timers[timer.slot]
        if any(t.durable for t in due):
            self._changed()
        return due

    def enqueue(self, run: QueuedRun) -> None:
        self._queued[run.id] = run
        self._changed()

    def dequeue(self, run: str) -> None:
        if self._queued.pop(run, None) is not None:
            self._changed()

    def queued(self) -> list[QueuedRun]:
        """Waiting runs, oldest first."""
        return sorted(self._queued.values(), key=lambda r: run_number(r.id))

    def keep_only(self, actuators: Collection[str]) -> None:
        """Forget actuator timers of actuators that no longer exist (after a reload)."""
        stale = [s for s, t in self._timers.items() if t.kind in ACTUATOR_KINDS]
        self._forget([s for s in stale if s[1] not in actuators])

    def forget_rules(self, rules: Collection[str]) -> None:
        """Forget the timers and queued runs of these rules (changed or gone at a reload)."""
        self._forget([s for s, t in self._timers.items() if t.rule in rules])
        for run in [r.id for r in self._queued.values() if r.rule in rules]:
            self.dequeue(run)

    def held(self, actuators: Collection[str], now: float) -> dict[str, bool | float]:
        """Actuators that were switched for a while when the gateway stopped or crashed.

        A saved switch-back means the actuator was in another state until
        then (a pwm output at a level): it is so again until that deadline
        (one already passed switches it back at once).
        """
        states: dict[str, bool | float] = {}
        for timer in self:
            payload = timer.payload
            if timer.kind is not TimerKind.REVERT or not isinstance(payload, Switch):
                continue
            if timer.key not in actuators or timer.due <= now:
                continue
            was = payload.was if payload.was is not None else not payload.state
            states[timer.key] = was
            shown = "on" if was is True else "off" if was is False else f"at level {was:g}"
            until = dt.datetime.fromtimestamp(timer.due).strftime("%H:%M:%S")
            _LOG.info(
                "%s restored %s until %s (a timer saved before the restart)",
                timer.key,
                shown,
                until,
            )
        return states

    def _forget(self, slots: list[tuple[TimerKind, str]]) -> None:
        for slot in slots:
            del self._timers[slot]
        if slots:
            self._changed()

    def _changed(self) -> None:
        self._dirty = True
        if not self._batches:
            self._save()

    def _save(self) -> None:
        self._dirty = False
        if self._path is None:
            return
        document = {
            "version": FILE_VERSION,
            "timers": [_dump(t) for t in self._timers.values() if t.durable],
            "queued": [
                {"id": r.id, "rule": r.rule, "event": r.event} for r in self._queued.values()
            ],
        }
        data = safejson.dumps(document)
        tmp = self._path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
            _fsync_directory(self._path.parent)  # else a power cut may undo the rename
        except OSError as exc:
            _LOG.error("cannot save timers to %s: %s (they still run until restart)", tmp, exc)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- the file


def _dump(timer: Timer) -> dict[str, Any]:
    p = timer.payload
    data: dict[str, Any]
    if isinstance(p, Switch):
        data = {"state": p.state, "by": p.by}
        if p.was is not None:
            data["was"] = p.was
    else:
        data = {"rule": p.rule, "index": p.index}
        if p.event is not None:
            data["event"] = p.event
    return {"kind": str(timer.kind), "key": timer.key, "due": timer.due, "data": data}


Loaded = tuple[dict[tuple[TimerKind, str], Timer], dict[str, QueuedRun]]


def _load(path: Path) -> Loaded:
    """The saved timers; a damaged file or entry is logged and skipped, never a crash.

    Reads this format (``{"version": 2, "timers", "queued"}``) and the list
    of timers written before it (where a queued run was a ``queued`` timer)."""
    timers: dict[tuple[TimerKind, str], Timer] = {}
    queued: dict[str, QueuedRun] = {}
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return timers, queued
    except (OSError, ValueError, RecursionError) as exc:
        _LOG.error("cannot read saved timers %s: %s; starting without them", path, exc)
        return timers, queued
    if isinstance(raw, dict) and isinstance(raw.get("timers"), list):
        entries, waiting = raw["timers"], raw.get("queued", [])
    elif isinstance(raw, list):  # the format before version 2
        entries, waiting = raw, []
    else:
        _LOG.error(
            "saved timers %s: expected timers, found a JSON %s; starting without them",
            path,
            type(raw).__name__,
        )
        return timers, queued
    for index, item in enumerate([*entries, *(waiting if isinstance(waiting, list) else [])]):
        entry = _entry(item)
        if entry is None:
            _LOG.error(
                "saved timers %s: entry %d is not a timer, skipped: %.200r", path, index, item
            )
        elif isinstance(entry, QueuedRun):
            queued[entry.id] = entry
        else:
            timers[entry.slot] = entry
    return timers, queued


def _entry(item: Any) -> Timer | QueuedRun | None:
    """One saved entry, if every field has its type."""
    if not isinstance(item, dict):
        return None
    if set(item) == {"id", "rule", "event"}:
        run, rule, event = item["id"], item["rule"], item["event"]
        if isinstance(run, str) and isinstance(rule, str) and isinstance(event, dict):
            return QueuedRun(run, rule, event)
        return None
    if set(item) - {"kind", "key", "due", "data", "durable"}:
        return None
    kind, key, due = item.get("kind"), item.get("key"), item.get("due")
    data, durable = item.get("data", {}), item.get("durable", True)
    if not (isinstance(kind, str) and isinstance(key, str) and isinstance(data, dict)):
        return None
    if isinstance(due, bool) or not isinstance(due, int | float) or durable is not True:
        return None
    if not safejson.finite(float(due)):
        return None
    if kind == "queued":  # before version 2: a run waiting in a queue, as a timer
        rule, event = data.get("rule"), data.get("event")
        if isinstance(rule, str) and isinstance(event, dict):
            return QueuedRun(key, rule, event)
        return None
    if kind not in TimerKind.__members__.values():
        return None
    payload = _payload(TimerKind(kind), key, data)
    return None if payload is None else Timer(TimerKind(kind), key, float(due), payload)


def _payload(kind: TimerKind, key: str, data: dict[str, Any]) -> Switch | Step | None:
    if kind in ACTUATOR_KINDS:
        state, by, was = data.get("state", False), data.get("by", ""), data.get("was")
        if not isinstance(state, bool | float | int) or not isinstance(by, str):
            return None
        if was is not None and not isinstance(was, bool | float | int):
            return None
        return Switch(_state(state), by, None if was is None else _state(was))
    rule, event = data.get("rule"), data.get("event")
    index = data.get("index", data.get("trigger"))
    if index is None and kind is TimerKind.FOR:  # before version 2: the index in the key
        number = key.rpartition("#")[2]
        index = int(number) if number.isdigit() else None
    elif index is None and kind is TimerKind.COOLDOWN:
        index = 0
    if not isinstance(rule, str) or isinstance(index, bool) or not isinstance(index, int):
        return None
    if event is not None and not isinstance(event, dict):
        return None
    if kind in (TimerKind.FOR, TimerKind.RUN) and event is None:
        return None
    return Step(rule, index, event)


def _state(value: bool | float | int) -> bool | float:
    return value if isinstance(value, bool) else float(value)
