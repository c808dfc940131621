"""The outbox database: every webhook is a row before anything is sent.

SQLite in WAL mode with ``synchronous=FULL``: a committed row survives a
kill -9 or a power cut. One dedicated thread owns the connection; the event
loop talks to it through :meth:`OutboxStore.call`. Rows are group-committed
(all that wait, one transaction, one fsync; the first row of an idle queue
at once, or after ``commit_window``; under load, a run of rows while they
keep coming, up to ``BUSY_WINDOW``, so a burst writes a page once a run;
``intake.MOST`` rows at most, so a backlog reaches delivery in parts).
Delivery results ride in the next commit, or go within ``RECORD_DELAY``
without an fsync of their own (a power cut in between only sends a webhook
again); counters every ``COUNTERS_EVERY``. Each commit hands the loop, in
one call, its new rows (sent without being read back) and how far
submissions are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from gateway.errors import OutboxError
from gateway.outbox.database import (
    add_to_counter,
    bump_counter,
    delete_seqs,
    last_seq,
    open_checked,
    outbox_size,
    transaction,
)
from gateway.outbox.intake import MOST, Jobs
from gateway.outbox.jobs import Committed, NewMessage, SeenHook, encode_body, lost
from gateway.outbox.rows import Outcome, write_outcomes
from gateway.signing import new_message_id
from gateway.sqlrows import insert_many

_LOG = logging.getLogger(__name__)

T = TypeVar("T")

_DUE = object()  # a job that says the waiting results are due: write them now
LOST_KEPT = 100_000  # submission numbers of failed rows remembered for flushed(since)
RECORD_DELAY = 0.2  # a delivery result waits at most this long for a commit to ride in
RECORD_BATCH = 512  # ... or until this many wait
COUNTERS_EVERY = 5.0  # seconds between writes of the delivered/dead counters
BUSY_WINDOW = 0.010  # under load, a commit gathers new rows this long at most ...
BUSY_GAP = 0.002  # ... while they keep coming: a pause this long commits them


class OutboxStore:
    """The outbox database behind one writer thread.

    ``max_rows`` and ``max_bytes`` cap the undelivered rows (pending and dead
    letters); ``when_full`` says what gives: ``drop_oldest`` deletes the
    oldest rows of any endpoint, ``reject_new`` refuses the new ones. Every
    drop is counted and logged.
    """

    def __init__(
        self,
        path: Path,
        max_rows: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        when_full: str = "drop_oldest",
        clock: Callable[[], float] = time.time,
        commit_window: float = 0.0,
    ) -> None:
        self.path = path
        self.commit_window = commit_window
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.clock = clock
        self.on_commit: Callable[[Committed], object] = lambda committed: None  # on the loop
        self._jobs = Jobs()
        self._outcomes: deque[Outcome] = deque()  # results to write (outside the job queue)
        self._timed = False  # a timer on the loop will say when results are due
        self._drains = 0  # times the thread took the results (the loop's timer reads it)
        self._drained_at = 0.0  # time.monotonic() of the last
        self._loop: asyncio.AbstractEventLoop | None = None
        self._submitting = threading.Lock()  # numbers enter the queue in their order
        self._settled = 0  # submissions up to this number are committed (or lost)
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._callbacks: list[tuple[int, int, Callable[[int], object]]] = []  # a heap
        self._calls = itertools.count()  # ... in the order they came, for equal numbers
        self._seq = 0  # the last row's seq (the outbox thread's)
        self._unsaved = {"delivered": 0, "dead": 0}  # counts not yet in the counters table
        self._counted = time.monotonic()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._rows = self._bytes = 0
        self._numbers = itertools.count(1)
        self._submitted = 0
        self._lost: deque[int] = deque(maxlen=LOST_KEPT)  # numbers of rows a commit failed
        self.failing = False  # the last commit failed (disk full, I/O error)
        self.commits = self.fsyncs = 0  # done by the thread (fsynced: those with new rows)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the database on its own thread; raises :class:`OutboxError` if it cannot.
        Started on an event loop, its commits are told to that loop."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._thread = threading.Thread(target=self._run, name="outbox-db", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise OutboxError(f"cannot open outbox {self.path}: {self._open_error}")

    def stop(self) -> None:
        """Commit what is queued, then close the database."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        for _, waiter in self._waiters:  # nothing more will be committed
            if not waiter.done():
                waiter.set_exception(OutboxError("the outbox is stopped"))
        self._waiters.clear()
        self._callbacks.clear()  # what they wait for may never be committed

    # ------------------------------------------------------------------ API for producers

    def submit(self, endpoint: str, event: str, data: Any) -> str:
        """Queue a webhook; returns its ``webhook-id``. Thread-safe, never blocks."""
        now = self.clock()
        body = encode_body(event, data, now)
        msg_id = new_message_id()
        with self._submitting:
            number = self._submitted = next(self._numbers)
            self._jobs.put(NewMessage(msg_id, endpoint, event, body, now, number))
        return msg_id

    def submit_rendered(
        self, msg_id: str, endpoint: str, event: str, body: bytes, request: str | None, now: float
    ) -> str:
        """Queue a request rendered already (a shaped endpoint's); its id."""
        with self._submitting:
            number = self._submitted = next(self._numbers)
            self._jobs.put(NewMessage(msg_id, endpoint, event, body, now, number, request))
        return msg_id

    def remember_hook(self, hook: str, msg_id: str) -> None:
        """Remember a hook's delivery id, committed with the webhooks submitted before it
        (those its rules queued): both are on disk, or neither (:meth:`flushed` says)."""
        with self._submitting:
            number = self._submitted = next(self._numbers)
            self._jobs.put(SeenHook(hook, msg_id, self.clock(), number))

    def mark(self) -> int:
        """A point in the stream of submissions, for :meth:`flushed` ``since``."""
        return self._submitted

    async def flushed(self, since: int | None = None) -> None:
        """Wait until every webhook submitted before this call is committed.

        With ``since`` (a :meth:`mark`), raises :class:`OutboxError` if any
        webhook submitted after that mark could not be committed (disk full,
        I/O error): the producer must not say "yes" for it.
        """
        lost = await self.lost([(since, self._submitted)] if since is not None else [])
        if any(lost):
            raise OutboxError(f"{sum(lost)} webhook(s) could not be stored (see the gateway log)")

    async def lost(self, spans: list[tuple[int, int]]) -> list[int]:
        r"""For each ``(before, after)`` pair of :meth:`mark`\ s, once everything
        submitted so far is committed: how many webhooks between them could not be."""
        await self._committed_upto(self._submitted)
        return [self.lost_between(b, a) for b, a in spans]

    def when_committed(self, number: int, callback: Callable[[int], object]) -> None:
        """Call ``callback(upto)`` on the loop once every submission up to ``number``
        (a :meth:`mark`) is committed or known lost, ``upto`` the highest that is;
        from the commit's own call, without a task to wake (soon, if it is already).
        Not called if the outbox stops first."""
        loop = asyncio.get_running_loop()
        if number <= self._settled:
            loop.call_soon(callback, self._settled)
        elif loop is not self._loop:  # commits are not told to this loop: ask the thread
            done = self.call_threadsafe(lambda db: None)  # FIFO: after the inserts before it
            done.add_done_callback(lambda _: loop.call_soon_threadsafe(callback, number))
        else:
            heapq.heappush(self._callbacks, (number, next(self._calls), callback))

    async def _committed_upto(self, number: int) -> None:
        if number <= self._settled:
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # commits are not told to this loop: ask the thread
            await self.call(lambda db: None)  # FIFO: runs after the inserts before it
            return
        waiter = loop.create_future()
        self._waiters.append((number, waiter))  # numbers only grow: resolved in order
        await waiter

    def _tell(self, committed: Committed) -> None:
        """On the event loop: a transaction is done."""
        settled = self._settled = max(self._settled, committed.upto)
        try:
            self.on_commit(committed)  # the new rows to the delivery first: they go out sooner
        except Exception:  # the rows are in the database: the delivery reads them later
            _LOG.exception("outbox: telling the delivery about a commit failed")
        callbacks = self._callbacks
        while callbacks and callbacks[0][0] <= settled:
            try:
                heapq.heappop(callbacks)[2](settled)
            except Exception:  # a bug there must not keep the others waiting
                _LOG.exception("outbox: a commit's callback failed")
        waiters = self._waiters
        while waiters and waiters[0][0] <= settled:
            _, waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def lost_between(self, since: int, upto: int) -> int:
        """How many submissions after mark ``since`` up to ``upto`` could not be committed:
        known once they are settled (the thread writes ``_lost`` before it says so)."""
        lost = 0
        for number in reversed(self._lost):
            if number <= since:
                break
            lost += number <= upto
        return lost

    def record(self, outcome: Outcome) -> None:
        """Write back one attempt, with the next commit (within ``RECORD_DELAY``).

        On the store's loop a timer says when they are due, and the thread is
        not woken for a result that the next row's commit takes anyway (at a
        steady rate, that wake and its hand-over of the GIL were one more per
        event); elsewhere (nothing delivers there) the thread writes it at once."""
        outcomes = self._outcomes
        outcomes.append(outcome)
        if len(outcomes) == RECORD_BATCH:  # once for a run (only the thread takes them)
            self._jobs.put(_DUE)
        elif not self._timed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None and loop is self._loop:
                self._timed = True
                loop.call_later(RECORD_DELAY, self._records_due, self._drains)
            else:
                self._jobs.put(_DUE)

    def _records_due(self, drains: int) -> None:
        """On the loop, ``RECORD_DELAY`` after a result came to an idle timer."""
        assert self._loop is not None
        if not self._outcomes:  # a commit took them
            self._timed = False
        elif self._drains != drains:  # ... and these came after it: due a delay after it
            delay = self._drained_at + RECORD_DELAY - time.monotonic()
            self._loop.call_later(max(0.0, delay), self._records_due, self._drains)
        else:
            self._timed = False
            self._jobs.put(_DUE)

    def call_threadsafe(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Run ``fn(db)`` on the database thread; a concurrent future of its result."""
        future: Future[T] = Future()
        self._jobs.put((fn, future))
        return future

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(db)`` on the database thread and await its result."""
        return await asyncio.wrap_future(self.call_threadsafe(fn))

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            db = open_checked(self.path)
            self._rows, self._bytes = outbox_size(db)
            self._seq = last_seq(db)
            _LOG.info("outbox: %d webhook(s) waiting in %s", self._rows, self.path)
        except Exception as exc:  # whatever it is, start() must not wait for ever
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._serve(db)
        finally:
            db.close()

    def _serve(self, db: sqlite3.Connection) -> None:
        stop = False
        while not stop:
            behind = not self._jobs.empty()  # jobs came in while the last commit ran
            jobs = self._jobs.take(None)
            rows = sum(isinstance(j, NewMessage | SeenHook) for j in jobs)
            room = MOST - len(jobs)  # none left: both take nothing
            if rows and self.commit_window:
                jobs += self._jobs.take_for(self.commit_window, room)
            elif rows > 1 and behind:  # under load: one commit for a run of rows
                jobs += self._jobs.gather(BUSY_WINDOW, BUSY_GAP, room)
            writes = [j for j in jobs if isinstance(j, NewMessage | SeenHook)]
            records = [self._outcomes.popleft() for _ in range(len(self._outcomes))]
            if records:
                self._drained_at = time.monotonic()
                self._drains += 1  # after the time: the loop reads them in this order
            calls = [j for j in jobs if isinstance(j, tuple)]
            stop = any(j is None for j in jobs)
            now = time.monotonic()
            counters = bool(calls or stop or now >= self._counted + COUNTERS_EVERY)
            if writes or records or (counters and any(self._unsaved.values())):
                self._commit(db, writes, records, counters)
            for fn, future in calls:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(db))
                    except BaseException as exc:
                        future.set_exception(exc)

    def _commit(
        self,
        db: sqlite3.Connection,
        writes: list[NewMessage | SeenHook],
        records: list[Outcome],
        counters: bool,
    ) -> None:
        """New rows, results and counters in one transaction; fsynced only with new
        rows (results alone: at worst a webhook is sent again after a power cut)."""
        messages = [w for w in writes if isinstance(w, NewMessage)]
        seen = [(f"{w.hook}:{w.msg_id}", w.hook, w.time) for w in writes if isinstance(w, SeenHook)]
        kept: list[NewMessage] = []
        delivered = dead = 0
        before = self._rows, self._bytes
        if not writes:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            with transaction(db):
                if records:
                    delivered, dead = write_outcomes(db, records)
                    self._rows -= delivered
                    self._bytes -= sum(len(o.row.body) for o in records if o.delivered)
                kept = self._make_room(db, messages) if messages else []
                insert_many(
                    db,
                    "INSERT INTO messages (seq, id, endpoint, event, body, created, next_try,"
                    " request)",
                    [m.values(self._seq + n) for n, m in enumerate(kept, start=1)],
                )
                insert_many(db, "INSERT OR REPLACE INTO seen_hooks", seen)
                unsaved = self._unsaved
                unsaved["delivered"] += delivered
                unsaved["dead"] += dead
                if counters:
                    for name, amount in unsaved.items():
                        if amount:
                            add_to_counter(db, name, amount)
        except sqlite3.Error as exc:  # disk full, I/O error: say so loudly
            self._failed(db, exc, writes, records)
            self._rows, self._bytes = before
            kept = []
        else:
            self.commits += 1
            if writes:
                self.fsyncs += 1
                self.failing = False
            if counters:
                self._unsaved = {"delivered": 0, "dead": 0}
                self._counted = time.monotonic()
            self._rows += len(kept)
            self._bytes += sum(len(m.body) for m in kept)
        finally:
            if not writes:
                db.execute("PRAGMA synchronous=FULL")
        rows = [m.row(self._seq + n) for n, m in enumerate(kept, start=1)]
        self._seq += len(kept)
        upto = max((w.number for w in writes), default=0)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: we are stopping
                self._loop.call_soon_threadsafe(self._tell, Committed(rows, upto))

    def _failed(
        self, db: sqlite3.Connection, exc: sqlite3.Error, writes: list[Any], records: list[Any]
    ) -> None:
        if records:  # their rows are still pending: sent again, at least once
            _LOG.error("outbox: cannot record %d delivery result(s): %s", len(records), exc)
        if writes:
            self.failing = True
            self._lost.extend(w.number for w in writes)
            _LOG.error(
                "outbox: cannot store %s (%s); already stored ones are safe", lost(writes), exc
            )
            bump_counter(db, "write_errors", len(writes))

    def _make_room(self, db: sqlite3.Connection, messages: list[NewMessage]) -> list[NewMessage]:
        """Apply ``max_rows``/``max_bytes`` to a batch about to be inserted."""
        new_rows, new_bytes = len(messages), sum(len(m.body) for m in messages)
        if self._fits(new_rows, new_bytes):
            return messages
        self._rows, self._bytes = outbox_size(db)  # deliveries deleted rows meanwhile
        if self._fits(new_rows, new_bytes):
            return messages
        if self.when_full == "reject_new":
            kept: list[NewMessage] = []
            for message in messages:
                if self._fits(len(kept) + 1, sum(len(k.body) for k in kept) + len(message.body)):
                    kept.append(message)
            add_to_counter(db, "dropped_new", len(messages) - len(kept))
            _LOG.error("outbox full: rejected %d new webhook(s)", len(messages) - len(kept))
            return kept
        excess_rows = self._rows + new_rows - self.max_rows
        excess_bytes = self._bytes + new_bytes - self.max_bytes
        doomed: list[int] = []
        for seq, size in db.execute("SELECT seq, length(body) FROM messages ORDER BY seq"):
            if excess_rows <= 0 and excess_bytes <= 0:
                break
            doomed.append(seq)
            excess_rows, excess_bytes = excess_rows - 1, excess_bytes - size
        delete_seqs(db, doomed)  # many a statement: a step per row waits for the GIL
        self._rows, self._bytes = outbox_size(db)
        kept = list(messages)
        while kept and not self._fits(len(kept), sum(len(k.body) for k in kept)):
            kept.pop(0)  # a burst larger than the whole cap: its own oldest go too
        dropped = len(doomed) + len(messages) - len(kept)
        add_to_counter(db, "dropped_oldest", dropped)
        _LOG.error("outbox full: dropped the %d oldest webhook(s)", dropped)
        return kept

    def _fits(self, rows: int, size: int) -> bool:
        return self._rows + rows <= self.max_rows and self._bytes + size <= self.max_bytes
