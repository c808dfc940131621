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

import dataclasses
import datetime as dt
import logging
from collections.abc import Collection, Iterator
from pathlib import Path

from gateway import safejson
from gateway.files import write_atomic
from gateway.rules import timerfile
from gateway.rules.timerkinds import (
    ACTUATOR_KINDS,
    Hold,
    QueuedRun,
    Switch,
    Timer,
    TimerKind,
    run_number,
)

_LOG = logging.getLogger(__name__)


class TimerTable:
    """Pending timers and queued runs, optionally saved to a file."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._timers: dict[tuple[TimerKind, str], Timer] = {}
        self._queued: dict[str, QueuedRun] = {}
        self.holds: dict[str, Hold] = {}  # by actuator; change it, then call touch()
        self._batches = 0
        self._dirty = False
        self.sets = 0  # timers set so far: the same after a call, no timer came due sooner
        if path is not None:
            self._timers, self._queued, self.holds = timerfile.load(path)

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
        self.sets += 1
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

    def touch(self) -> None:
        """``holds`` changed: save (at the end of the batch)."""
        self._changed()

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
        for name in [n for n in self.holds if n not in actuators]:
            del self.holds[name]
            self._changed()

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
            "version": timerfile.FILE_VERSION,
            "timers": [timerfile.dump(t) for t in self._timers.values() if t.durable],
            "queued": [
                {"id": r.id, "rule": r.rule, "event": r.event} for r in self._queued.values()
            ],
            "holds": [dataclasses.asdict(h) for h in self.holds.values()],
        }
        try:
            write_atomic(self._path, safejson.dumps(document))
        except OSError as exc:
            _LOG.error(
                "cannot save timers to %s: %s (they still run until restart)", self._path, exc
            )
