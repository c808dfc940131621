"""The outbox's SQLite file: its schema, pragmas, transactions and counters.

WAL with ``synchronous=FULL`` (a committed row survives a power cut),
incremental auto-vacuum (pruning gives pages back without rewriting the
file), and autocommit outside explicit :func:`transaction` blocks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.errors import OutboxError
from gateway.sqlrows import CHUNK

_LOG = logging.getLogger(__name__)

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA journal_size_limit=4194304",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,  -- random: an index on it would dirty a random page per insert
    endpoint TEXT NOT NULL,
    event TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    first_try REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS messages_queue ON messages (endpoint, state, seq);
CREATE INDEX IF NOT EXISTS messages_due ON messages (endpoint, state, next_try);
CREATE TABLE IF NOT EXISTS attempts (
    msg_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    time REAL NOT NULL,
    duration REAL NOT NULL,
    status INTEGER NOT NULL,
    error TEXT,
    response TEXT
);
CREATE INDEX IF NOT EXISTS attempts_time ON attempts (time);
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT PRIMARY KEY,
    disabled INTEGER NOT NULL DEFAULT 0,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS seen_hooks (
    id TEXT PRIMARY KEY,
    hook TEXT NOT NULL,
    time REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

PENDING, DEAD = "pending", "dead"


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (the connection is in autocommit mode otherwise)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def open_checked(path: Path) -> sqlite3.Connection:
    """Open the outbox, checking it first; a file that is not a database is moved aside.

    ``PRAGMA quick_check`` finds a damaged database (a torn page, a WAL from
    another database); what can be read is still delivered, and the log says
    so plainly. A file SQLite cannot open at all is renamed
    ``outbox.db.damaged-<time>`` (kept for recovery) and a new outbox started.
    """
    try:
        db = open_database(path)
        problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            outbox_size(db)  # can the queue still be read at all?
            _LOG.error(
                "outbox %s is damaged (%s): delivering what can still be read",
                path,
                "; ".join(problems)[:500],
            )
        return db
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise
        with contextlib.suppress(NameError, sqlite3.Error):
            db.close()
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                os.replace(source, aside.with_name(aside.name + suffix))
        _LOG.error(
            "outbox %s is damaged (%s): moved to %s, starting an empty outbox", path, exc, aside
        )
        return open_database(path)


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the outbox database with our pragmas set."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    if new:  # only takes effect before the first table exists
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    for pragma in PRAGMAS:
        conn.execute(pragma)
    migrate(conn)
    return conn


SHAPED_REQUESTS = """
-- the request of an endpoint with a shape (method, URL, headers, content type) as JSON;
-- NULL: a Standard Webhooks POST to the endpoint's URL
ALTER TABLE messages ADD COLUMN request TEXT;
"""

PLAIN_SEQ = """
-- seq without AUTOINCREMENT: the outbox numbers its rows itself, and AUTOINCREMENT wrote
-- the sqlite_sequence page in every commit (one more 4 KiB page per event on the SD card)
CREATE TABLE messages_plain (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    event TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    first_try REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_status INTEGER,
    last_error TEXT,
    request TEXT
);
INSERT INTO messages_plain SELECT seq, id, endpoint, event, body, created, first_try,
    attempts, next_try, state, last_status, last_error, request FROM messages;
DROP TABLE messages;
ALTER TABLE messages_plain RENAME TO messages;
CREATE INDEX messages_queue ON messages (endpoint, state, seq);
CREATE INDEX messages_due ON messages (endpoint, state, next_try);
"""

TRIED_INDEX = """
-- rows never tried (last_status NULL) are read in seq order from where each worker left
-- off; only tried rows (retries, dead letters) are indexed. Each index over every row was
-- one more 4 KiB page written by every event: 16.6 -> ~5 KB per event
DROP INDEX messages_queue;
DROP INDEX messages_due;
CREATE INDEX messages_tried ON messages (endpoint, state, next_try) WHERE last_status IS NOT NULL;
"""

MIGRATIONS: tuple[str, ...] = (SCHEMA, SHAPED_REQUESTS, PLAIN_SEQ, TRIED_INDEX)
"""The schema's history: entry N brings a database from ``user_version`` N to N+1.

A new table or column is a new entry (``ALTER TABLE ... ADD COLUMN``, or a
new table and an ``INSERT ... SELECT`` for a change SQLite cannot alter);
an entry, once released, is never edited."""


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date, each step in its own transaction."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise OutboxError(
            f"the outbox was written by a newer gateway (schema {version}, this one knows"
            f" {len(MIGRATIONS)}): upgrade the gateway or move outbox.db aside"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={number};\nCOMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def outbox_size(db: sqlite3.Connection) -> tuple[int, int]:
    """Rows and body bytes in the outbox (pending and dead)."""
    rows, size = db.execute("SELECT count(*), total(length(body)) FROM messages").fetchone()
    return int(rows), int(size)


def delete_seqs(db: sqlite3.Connection, seqs: list[int]) -> None:
    """Delete rows by ``seq``, many a statement (see :mod:`gateway.sqlrows`)."""
    for start in range(0, len(seqs), CHUNK * 8):
        chunk = seqs[start : start + CHUNK * 8]
        db.execute(f"DELETE FROM messages WHERE seq IN ({', '.join('?' * len(chunk))})", chunk)


def last_seq(db: sqlite3.Connection) -> int:
    """The highest ``seq`` in the outbox: the store numbers new rows after it (a
    delivered row's number may come again after a restart; nothing keeps it)."""
    (highest,) = db.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()
    return int(highest)


def add_to_counter(db: sqlite3.Connection, name: str, amount: int) -> None:
    """Count ``amount`` more of ``name`` inside the caller's transaction."""
    db.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?)"
        " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
        (name, amount),
    )


def bump_counter(db: sqlite3.Connection, name: str, amount: int = 1) -> None:
    """Count in a transaction of its own; a counter is not worth an error."""
    try:
        with transaction(db):
            add_to_counter(db, name, amount)
    except sqlite3.Error:
        pass
