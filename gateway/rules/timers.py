"""Timers that survive restarts: auto-off deadlines and safety limits.

A timer is a deadline (seconds since the epoch, wall-clock) and what to do
then. The table is saved to ``timers.json`` in the state directory on every
change (written to a temporary file, fsynced, renamed: a power cut leaves
the old or the new table, never half of one). After a restart, a timer due
at 21:05 fires at 21:05, or at once if that time has passed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway import safejson

_LOG = logging.getLogger(__name__)

ACTUATOR_TIMERS = frozenset({"revert", "max_on"})


@dataclass(frozen=True, slots=True)
class Timer:
    """At ``due`` (seconds since the epoch), something of ``kind`` happens to ``key``.

    Kinds: ``revert`` and ``max_on`` switch the actuator ``key`` to
    ``data["state"]``; ``for``, ``run``, ``cooldown``, ``every`` and ``at``
    belong to the rule engine. Timers that are not ``durable`` (clock
    triggers, recomputed at start) are never written to disk.
    """

    kind: str
    key: str
    due: float
    data: dict[str, Any] = field(default_factory=dict)
    durable: bool = True

    @property
    def slot(self) -> str:
        return f"{self.kind}:{self.key}"


class TimerTable:
    """Pending timers by key, optionally saved to a file."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._timers: dict[str, Timer] = {}
        if path is not None:
            self._timers = _load(path)

    def __len__(self) -> int:
        return len(self._timers)

    def __iter__(self) -> Iterator[Timer]:
        return iter(sorted(self._timers.values(), key=lambda t: t.due))

    def get(self, kind: str, key: str) -> Timer | None:
        return self._timers.get(f"{kind}:{key}")

    def set(self, timer: Timer) -> None:
        old = self._timers.get(timer.slot)
        self._timers[timer.slot] = timer
        if timer.durable or (old is not None and old.durable):
            self._save()

    def cancel(self, kind: str, key: str) -> None:
        timer = self._timers.pop(f"{kind}:{key}", None)
        if timer is not None and timer.durable:
            self._save()

    def next_due(self) -> float | None:
        return min((t.due for t in self._timers.values()), default=None)

    def pop_due(self, now: float) -> list[Timer]:
        due = sorted((t for t in self._timers.values() if t.due <= now), key=lambda t: t.due)
        for timer in due:
            del self._timers[timer.slot]
        if any(t.durable for t in due):
            self._save()
        return due

    def keep_only(self, actuators: Collection[str]) -> None:
        """Forget actuator timers of actuators that no longer exist (after a reload)."""
        stale = [
            slot
            for slot, t in self._timers.items()
            if t.kind in ACTUATOR_TIMERS and t.key not in actuators
        ]
        for key in stale:
            del self._timers[key]
        if stale:
            self._save()

    def held(self, actuators: Collection[str], now: float) -> dict[str, bool | float]:
        """Actuators that were switched for a while when the gateway stopped or crashed.

        A saved switch-back means the actuator was in another state until
        then (a pwm output at a level): it is so again until that deadline
        (one already passed switches it back at once).
        """
        states: dict[str, bool | float] = {}
        for timer in self:
            if timer.kind != "revert" or timer.key not in actuators or timer.due <= now:
                continue
            was = timer.data.get("was", not timer.data.get("state", False))
            states[timer.key] = was if isinstance(was, (bool, float)) else bool(was)
            shown = "on" if was is True else "off" if was is False else f"at level {was:g}"
            until = dt.datetime.fromtimestamp(timer.due).strftime("%H:%M:%S")
            _LOG.info(
                "%s restored %s until %s (a timer saved before the restart)",
                timer.key,
                shown,
                until,
            )
        return states

    def forget_rules(self, rules: Collection[str]) -> None:
        """Forget the timers of these rules (changed or removed by a reload)."""
        stale = [
            slot
            for slot, t in self._timers.items()
            if t.kind not in ACTUATOR_TIMERS and t.data.get("rule") in rules
        ]
        for slot in stale:
            del self._timers[slot]
        if stale:
            self._save()

    def _save(self) -> None:
        if self._path is None:
            return
        durable = [asdict(t) for t in self._timers.values() if t.durable]
        data = json.dumps(durable, indent=0, default=str)
        tmp = self._path.with_suffix(".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
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


def _load(path: Path) -> dict[str, Timer]:
    """The saved timers; a damaged file or entry is logged and skipped, never a crash."""
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:
        _LOG.error("cannot read saved timers %s: %s; starting without them", path, exc)
        return {}
    if not isinstance(raw, list):
        _LOG.error(
            "saved timers %s: expected a list, found a JSON %s; starting without them",
            path,
            type(raw).__name__,
        )
        return {}
    timers = {}
    for index, item in enumerate(raw):
        timer = _timer(item)
        if timer is None:
            _LOG.error(
                "saved timers %s: entry %d is not a timer, skipped: %.200r", path, index, item
            )
            continue
        timers[timer.slot] = timer
    return timers


def _timer(item: Any) -> Timer | None:
    """One saved entry, if every field has its type."""
    if not isinstance(item, dict) or set(item) - {"kind", "key", "due", "data", "durable"}:
        return None
    kind, key, due = item.get("kind"), item.get("key"), item.get("due")
    data, durable = item.get("data", {}), item.get("durable", True)
    if not (isinstance(kind, str) and isinstance(key, str) and isinstance(data, dict)):
        return None
    if isinstance(due, bool) or not isinstance(due, int | float) or not isinstance(durable, bool):
        return None
    if not safejson.finite(float(due)):
        return None
    return Timer(kind, key, float(due), data, durable)
