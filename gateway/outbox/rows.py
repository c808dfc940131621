"""Rows as the delivery workers see them: which are due, and writing back attempts.

Plain functions of the outbox connection, run on the outbox thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.outbox.database import DEAD, PENDING, delete_seqs, last_seq, transaction


@dataclass(frozen=True, slots=True)
class Row:
    """One message as the delivery workers see it."""

    seq: int
    id: str
    endpoint: str
    event: str
    body: bytes
    created: float
    first_try: float | None
    attempts: int
    request: str | None = None  # a shaped request's method, URL, headers (JSON)


_ROW_COLUMNS = "seq, id, endpoint, event, body, created, first_try, attempts, request"


@dataclass(frozen=True, slots=True)
class Due:
    """What a read of the queue found for one endpoint."""

    rows: list[Row]
    upcoming: float | None  # when the next row not in ``rows`` is due, if one waits
    scanned: int  # every row never tried up to this seq is in ``rows`` or was excluded


_TRIED = "endpoint = ? AND state = ? AND last_status IS NOT NULL"  # the messages_tried index
_UNTRIED = "seq > ? AND last_status IS NULL AND endpoint = ? AND state = ?"  # rowid order


def due_rows(
    db: sqlite3.Connection,
    endpoint: str,
    now: float,
    limit: int,
    exclude: frozenset[int],
    in_order: bool,
    scanned: int = 0,
) -> Due:
    """Up to ``limit`` rows of ``endpoint`` due now (not in ``exclude``, the rows
    being sent), when the next one is due, and how far the rows never tried were
    read.

    A row never tried is due from when it was written, and such rows are read
    in seq order after ``scanned`` (what an earlier read returned: the caller
    has them, or has sent them): no index covers them, so writing one dirties
    only the table's last page. Tried rows (retries, dead letters) are found
    through their index by ``next_try``, and come first.

    ``in_order`` (one request in flight) takes only the oldest pending row,
    and only when it is due and not being sent: a later row never overtakes
    it. A disabled endpoint (410 Gone) has no due rows, and none is ever due.
    """
    disabled = db.execute("SELECT disabled FROM endpoints WHERE name = ?", (endpoint,)).fetchone()
    if disabled and disabled[0]:  # nothing until it is enabled (not "caught up": see delivery)
        return Due([], float("inf"), scanned)
    if in_order:
        return _head(db, endpoint, now, exclude, scanned)
    avoid = json.dumps(sorted(exclude))
    tried = _rows(
        db,
        f"{_TRIED} AND next_try <= ? AND seq NOT IN (SELECT value FROM json_each(?))"
        " ORDER BY next_try LIMIT ?",
        (endpoint, PENDING, now, avoid, limit),
    )
    room = limit - len(tried)
    untried = (
        _rows(
            db,
            f"{_UNTRIED} AND seq NOT IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?",
            (scanned, endpoint, PENDING, avoid, room),
        )
        if room > 0
        else []
    )
    if untried and len(untried) == room:
        scanned = untried[-1].seq  # more may follow: the next read goes on from here
    elif room > 0:
        scanned = max(scanned, last_seq(db))  # all read (or being sent)
    rows = tried + untried
    if rows:
        return Due(rows, None, scanned)
    upcoming = db.execute(
        f"SELECT min(next_try) FROM messages WHERE {_TRIED} AND next_try > ?",
        (endpoint, PENDING, now),
    ).fetchone()[0]
    return Due(rows, upcoming, scanned)


def _head(
    db: sqlite3.Connection, endpoint: str, now: float, exclude: frozenset[int], scanned: int
) -> Due:
    """The oldest pending row of ``endpoint``, if it is due and not being sent."""
    columns = f"{_ROW_COLUMNS}, next_try"
    found = [
        db.execute(
            f"SELECT {columns} FROM messages WHERE {_TRIED} ORDER BY seq LIMIT 1",
            (endpoint, PENDING),
        ).fetchone(),
        db.execute(
            f"SELECT {columns} FROM messages WHERE {_UNTRIED} ORDER BY seq LIMIT 1",
            (scanned, endpoint, PENDING),
        ).fetchone(),
    ]
    untried = found[1]
    scanned = untried[0] - 1 if untried is not None else max(scanned, last_seq(db))
    candidates = [f for f in found if f is not None]
    if not candidates:
        return Due([], None, scanned)
    head = min(candidates, key=lambda f: int(f[0]))
    if head[0] in exclude:
        return Due([], None, scanned)
    if head is found[0] and head[-1] > now:  # a row never tried is due from its start
        return Due([], head[-1], scanned)
    return Due([Row(*head[:-1])], None, scanned)


def _rows(db: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[Row]:
    """The rows ``where`` selects, as one row of JSON: one step (see
    gateway.sqlrows.insert_many: a step per row waits for the GIL)."""
    (found,) = db.execute(
        "SELECT json_group_array(json_array(seq, id, endpoint, event, hex(body), created,"
        f" first_try, attempts, request)) FROM (SELECT * FROM messages WHERE {where})",
        params,
    ).fetchone()
    return [
        Row(s, i, e, v, bytes.fromhex(b), c, f, a, r)
        for s, i, e, v, b, c, f, a, r in json.loads(found)
    ]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt, to be written back."""

    row: Row
    time: float
    duration: float
    status: int  # 0 for a network error or timeout
    error: str | None
    response: str
    delivered: bool
    next_try: float | None = None  # None with delivered=False: dead letter
    park_endpoint: bool = False
    counts: bool = True  # False: the uplink was down, the attempt does not count


def write_outcomes(db: sqlite3.Connection, outcomes: Iterable[Outcome]) -> tuple[int, int]:
    """Write back a batch of attempts inside the caller's transaction; how many
    were delivered and how many became dead letters (for the counters).

    The attempt log keeps every failed attempt and the success that ends a
    retried message; a message delivered at its first attempt only counts
    in ``delivered`` (one row written less per event: SD cards wear).
    """
    delivered: list[int] = []
    dead = 0
    for o in outcomes:
        if not o.delivered or o.row.attempts:
            db.execute(
                "INSERT INTO attempts (msg_id, endpoint, time, duration, status, error,"
                " response) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    o.row.id,
                    o.row.endpoint,
                    o.time,
                    o.duration,
                    o.status,
                    o.error,
                    o.response if not o.delivered else "",
                ),
            )
        if o.delivered:
            delivered.append(o.row.seq)
            continue
        state, next_try = (PENDING, o.next_try) if o.next_try is not None else (DEAD, 0.0)
        if o.park_endpoint:
            state, next_try = PENDING, o.time
            db.execute(
                "INSERT INTO endpoints (name, disabled, reason) VALUES (?, 1, ?)"
                " ON CONFLICT(name) DO UPDATE SET disabled = 1, reason = excluded.reason",
                (o.row.endpoint, o.error),
            )
        db.execute(
            "UPDATE messages SET attempts = attempts + ?, next_try = ?, state = ?,"
            " first_try = CASE WHEN ? THEN coalesce(first_try, ?) ELSE first_try END,"
            " last_status = ?, last_error = ? WHERE seq = ?",
            (int(o.counts), next_try, state, o.counts, o.time, o.status, o.error, o.row.seq),
        )
        dead += state == DEAD
    delete_seqs(db, delivered)
    return len(delivered), dead


def release_rows(db: sqlite3.Connection, endpoint: str, now: float) -> int:
    """Every pending row of ``endpoint`` is due now (its circuit closed); how many."""
    with transaction(db):
        return db.execute(
            f"UPDATE messages SET next_try = ? WHERE {_TRIED} AND next_try > ?",
            (now, endpoint, PENDING, now),
        ).rowcount
