"""``history.db``: sensor readings, actuator switches and rule traces on disk.

Written in batches by :class:`gateway.history.recorder.Recorder` (one
transaction every ``history.commit_every``), pruned by age and by size. WAL
with ``synchronous=NORMAL``: a power cut may lose the last batch, never the
file; none of this is a promise the way the outbox is.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.sqlrows import insert_many

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    sensor TEXT NOT NULL,
    t REAL NOT NULL,        -- a reading's time, or the start of its resolution window
    value REAL,             -- the mean over the window; binary: 1 or 0; NULL: unavailable
    min REAL,
    max REAL
);
CREATE INDEX IF NOT EXISTS readings_by_sensor ON readings (sensor, t);
CREATE TABLE IF NOT EXISTS switches (
    actuator TEXT NOT NULL,
    t REAL NOT NULL,
    state REAL NOT NULL,    -- 1, 0 or a pwm level
    who TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS switches_by_actuator ON switches (actuator, t);
CREATE TABLE IF NOT EXISTS traces (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    started REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_rule ON traces (rule, started);
"""

Row = tuple[str, float, float | None, float | None, float | None]
"""A reading: sensor, time, value (mean), min, max."""


@dataclass
class Batch:
    """What one commit writes."""

    readings: list[Row] = field(default_factory=list)
    switches: list[tuple[str, float, float, str]] = field(default_factory=list)
    traces: list[tuple[str, str, float, str]] = field(default_factory=list)  # id, rule, ...
    kept: dict[str, list[str]] = field(default_factory=dict)  # rule -> its trace ids kept

    def __bool__(self) -> bool:
        return bool(self.readings or self.switches or self.traces or self.kept)


class HistoryStore:
    """One SQLite connection, used from one thread at a time (the lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA busy_timeout=5000",
            "PRAGMA journal_size_limit=1048576",
        ):
            self._db.execute(pragma)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()

    def write(self, batch: Batch) -> None:
        """One transaction; traces beyond those ``kept`` per rule are deleted."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                insert_many(db, "INSERT INTO readings", batch.readings)
                insert_many(db, "INSERT INTO switches", batch.switches)
                insert_many(db, "INSERT OR REPLACE INTO traces", batch.traces)
                for rule, ids in batch.kept.items():
                    marks = ",".join("?" * len(ids))
                    db.execute(
                        f"DELETE FROM traces WHERE rule = ? AND id NOT IN ({marks})", (rule, *ids)
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def prune(self, before: float, max_bytes: int, rules: Iterable[str]) -> int:
        """Readings and switches older than ``before``, then the oldest tenth again
        while the file holds more than ``max_bytes``; traces of rules not in
        ``rules``. How many rows went."""
        with self._lock:
            db = self._db
            gone = db.execute("DELETE FROM readings WHERE t < ?", (before,)).rowcount
            gone += db.execute("DELETE FROM switches WHERE t < ?", (before,)).rowcount
            known = list(rules)
            marks = ",".join("?" * len(known))
            db.execute(f"DELETE FROM traces WHERE rule NOT IN ({marks})", known)
            for _ in range(10):  # each pass takes a tenth: bounded
                if self._used() <= max_bytes:
                    break
                for table in ("readings", "switches"):
                    (count,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
                    gone += db.execute(
                        f"DELETE FROM {table} WHERE rowid IN "
                        f"(SELECT rowid FROM {table} ORDER BY rowid LIMIT ?)",
                        (max(1, count // 10),),
                    ).rowcount
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return gone

    def _used(self) -> int:
        (pages,) = self._db.execute("PRAGMA page_count").fetchone()
        (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
        (size,) = self._db.execute("PRAGMA page_size").fetchone()
        return int((pages - free) * size)

    def readings(self, sensor: str, since: float, until: float, limit: int) -> list[Row]:
        with self._lock:
            rows = self._db.execute(
                "SELECT sensor, t, value, min, max FROM readings "
                "WHERE sensor = ? AND t >= ? AND t <= ? ORDER BY t DESC LIMIT ?",
                (sensor, since, until, limit),
            ).fetchall()
        return [tuple(row) for row in reversed(rows)]

    def switches(
        self, actuator: str, since: float, until: float, limit: int
    ) -> list[tuple[str, float, float, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT actuator, t, state, who FROM switches "
                "WHERE actuator = ? AND t >= ? AND t <= ? ORDER BY t DESC LIMIT ?",
                (actuator, since, until, limit),
            ).fetchall()
        return [tuple(row) for row in reversed(rows)]

    def traces(self) -> list[dict[str, Any]]:
        """Every saved trace, oldest first (a body that does not parse is skipped)."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM traces ORDER BY started, rowid").fetchall()
        found = []
        for (body,) in rows:
            try:
                doc = json.loads(body)
            except ValueError:
                continue
            if isinstance(doc, dict):
                found.append(doc)
        return found
