"""When the outbox commits: a row of an idle queue at once, a run of rows under load
in one commit (each page written once, not once per row)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.outbox import store as store_module
from gateway.outbox.intake import MOST
from gateway.outbox.rows import Outcome, Row
from gateway.outbox.store import OutboxStore


@pytest.fixture
async def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OutboxStore]:
    # wide enough that scheduling on a busy machine cannot end a gather early
    monkeypatch.setattr(store_module, "BUSY_GAP", 1.0)
    monkeypatch.setattr(store_module, "BUSY_WINDOW", 3.0)
    outbox = OutboxStore(tmp_path / "o.db")
    outbox.start()  # on the test's loop: commits are told to it
    yield outbox
    outbox.stop()


async def idle(store: OutboxStore) -> None:
    """Until the database thread waits for a job (in ``Jobs.take``, its queue empty)."""
    assert store._thread is not None
    for _ in range(500):  # bounded: 5 s
        frame = sys._current_frames().get(store._thread.ident or 0)
        if frame is not None and frame.f_code.co_name == "take" and store._jobs.empty():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the outbox thread never went idle")


def hold(store: OutboxStore) -> threading.Event:
    """Keep the database thread busy (as a long commit would) until the event is set."""
    held, release = threading.Event(), threading.Event()

    def busy(db: object) -> None:
        held.set()
        release.wait(10)

    store.call_threadsafe(busy)
    assert held.wait(10)  # rows submitted from now on wait behind it
    return release


async def test_rows_that_keep_coming_while_it_is_behind_share_one_commit(
    store: OutboxStore,
) -> None:
    commits: list[list[str]] = []
    store.on_commit = lambda committed: commits.append([r.event for r in committed.rows])
    mark = store.mark()
    release = hold(store)
    store.submit("hub", "a", {})
    store.submit("hub", "b", {})  # both wait behind the busy thread: it is behind
    release.set()
    await asyncio.sleep(0.2)  # within the gap: gathered with them
    store.submit("hub", "c", {})
    await store.flushed(since=mark)
    assert commits == [["a", "b", "c"]]


async def test_a_row_of_an_idle_queue_is_committed_at_once(store: OutboxStore) -> None:
    commits: list[list[str]] = []
    store.on_commit = lambda committed: commits.append([r.event for r in committed.rows])
    store.submit("hub", "a", {})
    await store.flushed()
    await idle(store)  # else b and c may both wait as it comes back from a: it is behind
    store.submit("hub", "b", {})  # one row, nothing waiting: not held for the gap
    store.submit("hub", "c", {})  # taken with b (already waiting), still not held
    await asyncio.wait_for(store.flushed(), 0.9)  # well within BUSY_GAP
    assert commits[0] == ["a"]
    assert [e for c in commits[1:] for e in c] == ["b", "c"]


async def test_a_stop_ends_a_gather_and_commits_what_it_holds(store: OutboxStore) -> None:
    release = hold(store)
    store.submit("hub", "a", {})
    store.submit("hub", "b", {})
    release.set()
    await asyncio.sleep(0.1)  # gathering now
    await asyncio.wait_for(asyncio.to_thread(store.stop), 0.9)  # not after the gap
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT event FROM messages ORDER BY seq").fetchall() == [("a",), ("b",)]
    db.close()


async def test_a_backlog_is_committed_a_few_hundred_rows_at_a_time(store: OutboxStore) -> None:
    """After a slow commit the rows that came meanwhile go in several commits, in order,
    so delivery gets the first of them while the rest are written."""
    commits: list[list[str]] = []
    store.on_commit = lambda committed: commits.append([r.event for r in committed.rows])
    mark = store.mark()
    release = hold(store)
    count = 2 * MOST + 10
    for n in range(count):
        store.submit("hub", f"e{n}", {})
    release.set()
    await store.flushed(since=mark)
    sizes = [len(c) for c in commits if c]
    assert max(sizes) <= MOST
    assert len(sizes) >= 3
    assert [e for c in commits for e in c] == [f"e{n}" for n in range(count)]


def delivered(row: Row) -> Outcome:
    return Outcome(
        row, time=row.created, duration=0.001, status=204, error=None, response="", delivered=True
    )


def counted_puts(store: OutboxStore) -> list[object]:
    """The jobs put for the database thread from now on."""
    puts: list[object] = []
    put = store._jobs.put

    def counting(job: object) -> None:
        puts.append(job)
        put(job)

    store._jobs.put = counting  # type: ignore[method-assign]
    return puts


def pending(store: OutboxStore) -> list[str]:
    db = sqlite3.connect(store.path)
    try:
        return [event for (event,) in db.execute("SELECT event FROM messages ORDER BY seq")]
    finally:
        db.close()


async def test_a_result_alone_is_written_a_record_delay_later_with_one_wake(
    store: OutboxStore,
) -> None:
    rows: list[Row] = []
    store.on_commit = lambda committed: rows.extend(committed.rows)
    store.submit("hub", "a", {})
    await store.flushed()
    puts = counted_puts(store)
    commits = store.commits
    store.record(delivered(rows[0]))
    assert puts == []  # not woken for it: a timer on the loop says when it is due
    for _ in range(100):  # bounded: 5 s
        await asyncio.sleep(0.05)
        if store.commits > commits:
            break
    assert store.commits == commits + 1
    assert len(puts) == 1  # the timer's one wake
    assert pending(store) == []


async def test_a_result_rides_the_next_rows_commit(store: OutboxStore) -> None:
    rows: list[Row] = []
    store.on_commit = lambda committed: rows.extend(committed.rows)
    store.submit("hub", "a", {})
    await store.flushed()
    commits = store.commits
    store.record(delivered(rows[0]))
    store.submit("hub", "b", {})
    await store.flushed()
    assert pending(store) == ["b"]  # a's delete went with b's insert
    await asyncio.sleep(store_module.RECORD_DELAY * 2)  # the timer finds nothing to write
    assert store.commits == commits + 1


async def test_a_full_outbox_drops_its_oldest_rows_a_statement_a_commit(tmp_path: Path) -> None:
    outbox = OutboxStore(tmp_path / "o.db", max_rows=1_000)
    outbox.start()
    try:
        for n in range(1_000):
            outbox.submit("hub", str(n), {})
        await outbox.flushed()
        statements: list[str] = []
        await outbox.call(lambda db: db.set_trace_callback(statements.append))
        release = hold(outbox)
        for n in range(1_000, 1_600):
            outbox.submit("hub", str(n), {})
        release.set()
        await outbox.flushed()
        await outbox.call(lambda db: db.set_trace_callback(None))
        deletes = [s for s in statements if s.startswith("DELETE")]
        assert len(deletes) <= -(-600 // MOST)  # one a commit (of MOST jobs at most), not one a row
        events = pending(outbox)
        assert len(events) == 1_000
        assert events[0] == "600"
        assert events[-1] == "1599"
    finally:
        outbox.stop()


async def test_a_commit_calls_back_those_waiting_for_it_in_the_order_of_their_marks(
    store: OutboxStore,
) -> None:
    """``when_committed`` (the MQTT link's PUBACKs): called from the commit itself, each
    with how far submissions are settled; soon for a mark already settled."""
    called: list[tuple[str, int]] = []
    release = hold(store)
    store.submit("hub", "a", {})
    first = store.mark()
    store.submit("hub", "b", {})
    second = store.mark()
    store.when_committed(second, lambda upto: called.append(("second", upto)))
    store.when_committed(first, lambda upto: called.append(("first", upto)))
    assert called == []
    release.set()
    await store.flushed()
    assert called == [("first", second), ("second", second)]  # one commit settled both
    store.when_committed(first, lambda upto: called.append(("again", upto)))
    assert called[-1][0] == "second"  # not from inside the call ...
    await asyncio.sleep(0)
    assert called[-1] == ("again", second)  # ... but soon


async def test_a_failing_callback_does_not_keep_the_others_waiting(
    store: OutboxStore, caplog: pytest.LogCaptureFixture
) -> None:
    called: list[int] = []
    release = hold(store)
    store.submit("hub", "a", {})
    mark = store.mark()

    def broken(upto: int) -> None:
        raise RuntimeError("a bug")

    store.when_committed(mark, broken)
    store.when_committed(mark, called.append)
    release.set()
    await store.flushed()
    assert called == [mark]
    assert "a commit's callback failed" in caplog.text
