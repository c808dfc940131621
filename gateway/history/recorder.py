"""The recorder: keeps what the gateway saw, in memory first and on disk in batches.

An :class:`~gateway.interfaces.Observer` of the runtime. Readings of
numeric sensors are folded into windows of ``history.resolution`` (mean,
min, max); binary readings, ``unavailable`` and switches are kept as they
happen; each rule's last ``history.traces`` traces are kept in memory (the
API reads them there) and written when they change. Everything waits for
the next commit, every ``history.commit_every``: the SD card sees one write
per several seconds, whatever the rate of readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gateway.config.storage import HistorySection
from gateway.events import UNAVAILABLE, Value
from gateway.history.store import Batch, HistoryStore, Row
from gateway.ratelog import RateLimitedLog
from gateway.rules.traces import Trace

_LOG = logging.getLogger(__name__)
_FAILED_LOG = RateLimitedLog(_LOG)

PRUNE_EVERY = 600.0  # seconds between prunes (by age and size)
MAX_PENDING = 100_000  # rows held for the next commit at most (a commit that keeps failing)


def _open(path: Path) -> HistoryStore | None:
    """The history file; a damaged one is moved aside (``history.db.damaged``) and a new
    one begun (history is a convenience: the outbox is elsewhere); None if even that fails
    (traces are then kept in memory only)."""
    for attempt in (1, 2):
        try:
            return HistoryStore(path)
        except (sqlite3.DatabaseError, OSError) as exc:
            if attempt == 1 and isinstance(exc, sqlite3.DatabaseError) and path.is_file():
                aside = path.with_name(path.name + ".damaged")
                _LOG.error(
                    "history: %s is damaged (%s): moved to %s, starting anew", path, exc, aside
                )
                with contextlib.suppress(OSError):
                    os.replace(path, aside)
                    for suffix in ("-wal", "-shm"):
                        Path(str(path) + suffix).unlink(missing_ok=True)
                continue
            _LOG.error("history: cannot open %s (%s): history and traces in memory only", path, exc)
    return None


class Recorder:
    """History and traces: an observer of the runtime, and what the API reads."""

    def __init__(
        self,
        path: Path | None,
        section: HistorySection,
        rules: Iterable[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.section = section
        self.clock = clock
        self.store = _open(path) if path is not None and section.enabled else None
        self.rules = list(rules)
        self.traces: dict[str, deque[Trace]] = {}
        self._dirty: dict[int, Trace] = {}  # by identity: the trace objects that changed
        self._touched: set[str] = set()  # rules whose kept traces changed
        self._windows: dict[str, list[float]] = {}  # sensor -> [start, sum, n, min, max]
        self._readings: list[Row] = []
        self._switches: list[tuple[str, float, float, str]] = []
        self._pruned = 0.0
        self.commits = 0
        self.errors = 0
        self.rows_written = 0
        if self.store is not None:
            for doc in self.store.traces():
                with contextlib.suppress(TypeError, ValueError, KeyError):
                    self._keep(Trace.from_json(doc))

    def configure(self, section: HistorySection, rules: Iterable[str]) -> None:
        """A reloaded config: its settings; the traces of rules it no longer has go."""
        self.section, self.rules = section, list(rules)
        for rule in list(self.traces):
            if rule not in self.rules:
                del self.traces[rule]
        for rule, kept in self.traces.items():
            if kept.maxlen != section.traces:
                self.traces[rule] = deque(kept, maxlen=section.traces)
                self._touched.add(rule)

    # ------------------------------------------------------------------ observer

    def sensor_changed(self, sensor: str, value: Value) -> None:
        if self.store is None:
            return
        now = self.clock()
        if value == UNAVAILABLE:
            self._close(sensor)
            self._pend((sensor, now, None, None, None))
        elif isinstance(value, bool):
            self._pend((sensor, now, float(value), None, None))
        elif isinstance(value, int | float) and math.isfinite(value):
            start = now - now % self.section.resolution
            window = self._windows.get(sensor)
            if window is not None and window[0] != start:
                self._close(sensor)
                window = None
            number = float(value)
            if window is None:
                self._windows[sensor] = [start, number, 1, number, number]
            else:
                window[1] += number
                window[2] += 1
                window[3] = min(window[3], number)
                window[4] = max(window[4], number)

    def actuator_switched(self, actuator: str, state: bool | float, who: str) -> None:
        if self.store is not None and len(self._switches) < MAX_PENDING:
            self._switches.append((actuator, self.clock(), float(state), who[:200]))

    def rule_traced(self, trace: Trace) -> None:
        if self.section.traces == 0:
            return
        self._keep(trace)
        self._dirty[id(trace)] = trace

    def _keep(self, trace: Trace) -> None:
        kept = self.traces.setdefault(trace.rule, deque(maxlen=self.section.traces or 1))
        for i, old in enumerate(kept):
            if old.id != trace.id:
                continue
            if old is not trace:  # resumed after a restart: the saved steps come first
                if trace.resumed:
                    trace.steps[:0] = old.steps
                    trace.conditions = old.conditions
                    trace.started, trace.who, trace.trigger = old.started, old.who, old.trigger
                    trace.resumed = False
                kept[i] = trace
                self._touched.add(trace.rule)
            return
        kept.append(trace)
        self._touched.add(trace.rule)

    def _close(self, sensor: str) -> None:
        window = self._windows.pop(sensor, None)
        if window is not None:
            start, total, n, low, high = window
            self._pend((sensor, start, total / n, low, high))

    def _pend(self, row: Row) -> None:
        if len(self._readings) < MAX_PENDING:
            self._readings.append(row)

    # ------------------------------------------------------------------ reading

    def rule_traces(self, rule: str) -> list[Trace]:
        """Newest first."""
        return list(reversed(self.traces.get(rule, ())))

    def last(self, rule: str) -> Trace | None:
        kept = self.traces.get(rule)
        return kept[-1] if kept else None

    async def readings(
        self, sensor: str, since: float, until: float, limit: int = 5000
    ) -> list[dict[str, Any]]:
        """Saved rows, then those waiting for the commit and the open window."""
        rows: list[Row] = []
        if self.store is not None:
            rows = await asyncio.to_thread(self.store.readings, sensor, since, until, limit)
        rows += [r for r in self._readings if r[0] == sensor and since <= r[1] <= until]
        window = self._windows.get(sensor)
        if window is not None and since <= window[0] <= until:
            rows.append((sensor, window[0], window[1] / window[2], window[3], window[4]))
        return [
            {"t": t, "value": value, "min": low, "max": high} for _, t, value, low, high in rows
        ][-limit:]

    async def switches(
        self, actuator: str, since: float, until: float, limit: int = 5000
    ) -> list[dict[str, Any]]:
        rows: list[tuple[str, float, float, str]] = []
        if self.store is not None:
            rows = await asyncio.to_thread(self.store.switches, actuator, since, until, limit)
        rows += [r for r in self._switches if r[0] == actuator and since <= r[1] <= until]
        return [{"t": t, "state": state, "who": who} for _, t, state, who in rows][-limit:]

    # ------------------------------------------------------------------ writing

    def take(self) -> Batch:
        """What the next commit writes (the traces as JSON now, in the loop's thread)."""
        now = self.clock()
        for sensor, window in list(self._windows.items()):
            if window[0] + self.section.resolution <= now:
                self._close(sensor)
        batch = Batch(self._readings, self._switches)
        self._readings, self._switches = [], []
        for trace in self._dirty.values():
            if trace in self.traces.get(trace.rule, ()):  # not already pushed out
                body = json.dumps(trace.to_json(), default=str)
                batch.traces.append((trace.id, trace.rule, trace.started, body))
        self._dirty.clear()
        for rule in self._touched:
            batch.kept[rule] = [t.id for t in self.traces.get(rule, ())]
        self._touched.clear()
        return batch

    async def commit(self) -> None:
        """Write what is waiting (one transaction), and prune now and then."""
        if self.store is None:
            return
        batch = self.take()
        try:
            if batch:
                await asyncio.to_thread(self.store.write, batch)
                self.commits += 1
                self.rows_written += len(batch.readings) + len(batch.switches) + len(batch.traces)
            now = self.clock()
            if now - self._pruned >= PRUNE_EVERY:
                self._pruned = now
                before = now - self.section.keep
                await asyncio.to_thread(self.store.prune, before, self.section.max_size, self.rules)
        except Exception as exc:  # a full disk, a broken file: the gateway goes on without
            self.errors += 1
            _FAILED_LOG.warning("history: could not write %s: %s (left out)", self.store.path, exc)

    async def run(self) -> None:
        """Commit every ``history.commit_every`` until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(self.section.commit_every)
                await self.commit()
        finally:
            await asyncio.shield(self.commit())

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
