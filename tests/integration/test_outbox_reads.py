"""How the delivery reads the outbox: rows never tried in seq order from where
it left off, tried rows through their index, and what an event writes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from gateway.outbox import database
from gateway.outbox.database import delete_seqs, transaction
from gateway.outbox.endpoints import EndpointState
from gateway.outbox.rows import Outcome, Row, due_rows, write_outcomes
from gateway.sqlrows import insert_many

INSERT = "INSERT INTO messages (seq, id, endpoint, event, body, created, next_try, request)"
NOW = 1000.0


def add(db: sqlite3.Connection, first: int, count: int, endpoint: str = "hub") -> None:
    rows = [
        (seq, f"msg_{seq}", endpoint, "e", json.dumps({"n": seq}).encode(), NOW, NOW, None)
        for seq in range(first, first + count)
    ]
    with transaction(db):
        insert_many(db, INSERT, rows)


def row(db: sqlite3.Connection, seq: int) -> Row:
    found = db.execute(
        "SELECT seq, id, endpoint, event, body, created, first_try, attempts, request"
        " FROM messages WHERE seq = ?",
        (seq,),
    ).fetchone()
    return Row(*found)


def fail(db: sqlite3.Connection, seq: int, next_try: float | None) -> None:
    """An attempt that failed: retried at ``next_try``, or a dead letter (None)."""
    outcome = Outcome(row(db, seq), NOW, 0.1, 500, "HTTP 500", "", False, next_try)
    with transaction(db):
        write_outcomes(db, [outcome])


def seqs(rows: list[Row]) -> list[int]:
    return [r.seq for r in rows]


def test_rows_never_tried_are_read_in_order_from_where_the_last_read_ended(
    tmp_path: Path,
) -> None:
    db = database.open_database(tmp_path / "o.db")
    add(db, 1, 10)
    first = due_rows(db, "hub", NOW, 4, frozenset(), False)
    assert (seqs(first.rows), first.scanned) == ([1, 2, 3, 4], 4)
    # being sent (excluded) or read before: the next read goes on after them
    second = due_rows(db, "hub", NOW, 4, frozenset({1, 2}), False, first.scanned)
    assert (seqs(second.rows), second.scanned) == ([5, 6, 7, 8], 8)
    last = due_rows(db, "hub", NOW, 4, frozenset(), False, second.scanned)
    assert (seqs(last.rows), last.scanned, last.upcoming) == ([9, 10], 10, None)
    empty = due_rows(db, "hub", NOW, 4, frozenset(), False, last.scanned)
    assert (empty.rows, empty.scanned, empty.upcoming) == ([], 10, None)
    add(db, 11, 1)  # a new row is found after the end
    assert seqs(due_rows(db, "hub", NOW, 4, frozenset(), False, empty.scanned).rows) == [11]


def test_tried_rows_come_first_when_due_and_say_when_they_are_due(tmp_path: Path) -> None:
    db = database.open_database(tmp_path / "o.db")
    add(db, 1, 4)
    add(db, 5, 2, endpoint="other")
    fail(db, 1, NOW + 30)  # retried in 30 s
    fail(db, 2, None)  # a dead letter: never due
    fail(db, 3, NOW - 1)  # due again
    due = due_rows(db, "hub", NOW, 10, frozenset(), False)
    assert seqs(due.rows) == [3, 4]  # the retry first, then the row never tried
    assert due.scanned == 6  # every row never tried was read (another endpoint's too)
    nothing = due_rows(db, "hub", NOW, 10, frozenset({3, 4}), False, due.scanned)
    assert (nothing.rows, nothing.upcoming) == ([], NOW + 30)
    # with one request in flight: the oldest pending row, only when it is due
    head = due_rows(db, "hub", NOW, 1, frozenset(), True)
    assert (head.rows, head.upcoming) == ([], NOW + 30)
    fail(db, 1, NOW - 1)
    assert seqs(due_rows(db, "hub", NOW, 1, frozenset(), True).rows) == [1]
    assert seqs(due_rows(db, "other", NOW, 1, frozenset(), True).rows) == [5]


def test_a_read_is_not_slowed_nor_stopped_by_dead_letters_before_it(tmp_path: Path) -> None:
    db = database.open_database(tmp_path / "o.db")
    add(db, 1, 300)
    for seq in range(1, 301):
        fail(db, seq, None)
    add(db, 301, 2)
    due = due_rows(db, "hub", NOW, 64, frozenset(), False)
    assert seqs(due.rows) == [301, 302]
    plan = " ".join(
        str(step)
        for step in db.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM messages WHERE seq > ? AND last_status IS NULL"
            " AND endpoint = ? AND state = ? ORDER BY seq",
            (due.scanned, "hub", "pending"),
        )
    )
    assert "rowid>?" in plan  # a range of the table from where the last read ended


def test_rows_read_but_not_sent_are_read_again(tmp_path: Path) -> None:
    """A worker that drops what it read (its endpoint reconfigured, or a failure
    with one request in flight) finds those rows again."""
    db = database.open_database(tmp_path / "o.db")
    add(db, 1, 6)
    state = EndpointState()
    due = due_rows(db, "hub", NOW, 4, frozenset(), False)
    state.ready.extend(due.rows)
    state.scanned = due.scanned
    state.in_flight.add(state.ready.popleft().seq)  # 1 is being sent
    state.drop_ready()  # 2, 3 and 4 are forgotten
    assert not state.ready
    assert state.scanned == 1
    again = due_rows(db, "hub", NOW, 4, frozenset(state.in_flight), False, state.scanned)
    assert seqs(again.rows) == [2, 3, 4, 5]


def test_an_event_writes_about_one_page(tmp_path: Path) -> None:
    """Insert a row and delete the one delivered before it, one commit each, as at
    200 msg/s: an index over every row would be one more 4 KiB page per commit."""
    db = database.open_database(tmp_path / "o.db")
    db.execute("PRAGMA wal_autocheckpoint=0")
    add(db, 1, 1)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    commits = 200
    for seq in range(2, commits + 2):
        body = json.dumps({"seq": seq, "value": "x" * 300}).encode()
        with transaction(db):
            insert_many(db, INSERT, [(seq, f"msg_{seq}", "hub", "e", body, NOW, NOW, None)])
            delete_seqs(db, [seq - 1])
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    frames = ((tmp_path / "o.db-wal").stat().st_size - 32) / (page_size + 24)
    assert frames / commits < 1.5
