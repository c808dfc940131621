"""The outbox against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config.models import WebhookEndpoint
from gateway.config.storage import OutboxSection
from gateway.errors import OutboxError
from gateway.outbox import database, service, shapes
from gateway.outbox import delivery as delivery_module
from gateway.outbox import queries as db_ops
from gateway.outbox.store import OutboxStore
from gateway.signing import verify
from tests.conftest import SECRET, Receiver, free_port, value_of, wait_until


class Outbox(service.Outbox):
    """The gateway's outbox with its delivery running, fast probes and no jitter."""

    def __init__(
        self,
        path: Path,
        endpoints: dict[str, WebhookEndpoint],
        link_probe: float = 0.3,
        breaker_probe: float = 0.5,
        **section: Any,
    ) -> None:
        super().__init__(
            path,
            OutboxSection.model_validate(section),
            endpoints,
            jitter=lambda: 0.5,
            link_probe=link_probe,
            breaker_probe=breaker_probe,
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Outbox:
        self.__enter__()
        self.task = asyncio.create_task(self.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task
        self.__exit__(None, None, None)

    async def rows(self) -> list[dict[str, Any]]:
        return await self.store.call(lambda db: db_ops.list_messages(db))

    async def state(self, key: str) -> Any:
        return (await self.stats())[key]


def endpoint(url: str, **kw: Any) -> WebhookEndpoint:
    return WebhookEndpoint.model_validate({"url": url, "secret": SECRET, "retry": ["100ms"], **kw})


@pytest.fixture
async def outbox(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Outbox]:
    async with Outbox(tmp_path / "outbox.db", {"hub": endpoint(receiver.url)}) as ob:
        yield ob


async def test_503_twice_then_200_arrives_on_the_third_attempt_with_one_id(
    outbox: Outbox, receiver: Receiver
) -> None:
    receiver.responses = [(503, {"Retry-After": "0"}), (503, {"Retry-After": "0"})]
    msg_id = outbox.store.submit("hub", "freezer.warm", {"temp": -9.5})
    attempts = await receiver.wait_for(3)
    assert [a.headers["webhook-id"] for a in attempts] == [msg_id] * 3
    assert len({a.body for a in attempts}) == 1  # the stored bytes, re-sent as they are
    for attempt in attempts:
        assert verify([SECRET], attempt.headers, attempt.body, now=time.time()) == msg_id
    assert attempts[-1].json["type"] == "freezer.warm"
    assert attempts[-1].json["data"] == {"temp": -9.5}
    await asyncio.sleep(0.2)
    stats = await outbox.stats()
    assert stats["pending"] == 0
    assert stats["counters"]["delivered"] == 1


async def test_one_request_in_flight_keeps_order(outbox: Outbox, receiver: Receiver) -> None:
    receiver.responses = [(500, {})]  # the first fails once: the others must wait for it
    ids = [outbox.store.submit("hub", "n", {"n": n}) for n in range(5)]
    got = await receiver.wait_for(6)
    delivered_order = [r.headers["webhook-id"] for r in got[1:]]
    assert delivered_order == ids


async def test_a_503_without_retry_after_waits_at_least_a_minute(
    outbox: Outbox, receiver: Receiver
) -> None:
    receiver.responses = [(503, {})]
    msg_id = outbox.store.submit("hub", "x", {})
    await receiver.wait_for(1)
    await asyncio.sleep(0.2)
    [row] = await outbox.store.call(lambda db: db_ops.list_messages(db))
    assert row["id"] == msg_id
    assert row["next_try"] - time.time() > 55


async def test_redirects_are_failures_and_not_followed(outbox: Outbox, receiver: Receiver) -> None:
    receiver.responses = [(302, {"Location": "http://127.0.0.1:9/elsewhere"})]
    outbox.store.submit("hub", "x", {})
    got = await receiver.wait_for(2)  # the retry comes back here, not to Location
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]


async def test_410_gone_disables_the_endpoint_and_keeps_its_webhooks(
    outbox: Outbox, receiver: Receiver
) -> None:
    receiver.responses = [(410, {})]
    outbox.store.submit("hub", "x", {})
    await receiver.wait_for(1)
    await wait_until(lambda: outbox.stats(), lambda s: s["endpoints"]["hub"].get("disabled"))
    outbox.delivery.wake_all()  # the worker reads the queue: a disabled one is not "caught up"
    await asyncio.sleep(0.1)
    outbox.store.submit("hub", "y", {})  # a new row is not handed to it either
    await asyncio.sleep(0.3)
    stats = await outbox.stats()
    assert stats["pending"] == 2
    assert len(receiver.received) == 1  # no more attempts while disabled
    await outbox.store.call(lambda db: db_ops.enable_endpoint(db, "hub", time.time()))
    outbox.delivery.wake_all()
    await receiver.wait_for(3)


async def test_exhausted_rows_become_dead_letters_and_retry_delivers_them(
    tmp_path: Path, receiver: Receiver
) -> None:
    hub = endpoint(receiver.url, max_age="250ms")
    async with Outbox(tmp_path / "o.db", {"hub": hub}) as ob:
        receiver.responses = [(500, {})] * 3
        msg_id = ob.store.submit("hub", "x", {})
        await receiver.wait_for(3)
        await wait_until(lambda: ob.state("dead"), lambda dead: dead == 1)
        stats = await ob.stats()
        assert (stats["pending"], stats["dead"]) == (0, 1)
        [dead] = await ob.store.call(lambda db: db_ops.list_messages(db, "dead"))
        assert dead["id"] == msg_id
        assert dead["last_error"] == "HTTP 500"
        assert await ob.store.call(lambda db: db_ops.retry(db, time.time(), dead=True)) == 1
        ob.delivery.wake_all()
        got = await receiver.wait_for(4)
        assert got[-1].headers["webhook-id"] == msg_id


async def test_a_full_outbox_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    dead_end = endpoint("http://127.0.0.1:9/", retry=["1h"])
    async with Outbox(tmp_path / "o.db", {"hub": dead_end}, max_rows=3) as ob:
        for n in range(5):
            ob.store.submit("hub", "n", {"n": n})
        await ob.flushed()
        stats = await ob.stats()
        assert stats["pending"] == 3
        assert stats["counters"]["dropped_oldest"] == 2


async def test_a_full_outbox_can_reject_new_webhooks_instead(tmp_path: Path) -> None:
    dead_end = endpoint("http://127.0.0.1:9/", retry=["1h"])
    async with Outbox(
        tmp_path / "o.db", {"hub": dead_end}, max_rows=2, when_full="reject_new"
    ) as ob:
        first = [ob.store.submit("hub", "n", {"n": n}) for n in range(4)]
        await ob.flushed()
        rows = await ob.store.call(lambda db: db_ops.list_messages(db))
        assert [r["id"] for r in rows] == first[:2]
        assert (await ob.stats())["counters"]["dropped_new"] == 2


async def test_max_bytes_caps_the_outbox_by_body_size(tmp_path: Path) -> None:
    dead_end = endpoint("http://127.0.0.1:9/", retry=["1h"])
    async with Outbox(tmp_path / "o.db", {"hub": dead_end}, max_bytes=1000) as ob:
        ids = [ob.store.submit("hub", "n", {"pad": "x" * 300}) for _ in range(5)]
        await ob.flushed()
        rows = await ob.store.call(lambda db: db_ops.list_messages(db))
        assert [r["id"] for r in rows] == ids[-2:]  # ~360 bytes each: two fit in 1000


@pytest.mark.parametrize("status", [400, 404, 500])
async def test_other_client_and_server_errors_retry_on_the_schedule(
    outbox: Outbox, receiver: Receiver, status: int
) -> None:
    receiver.responses = [(status, {})]
    outbox.store.submit("hub", "x", {})
    got = await receiver.wait_for(2)  # retried after ~100ms, then delivered
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    await wait_until(lambda: outbox.state("pending"), lambda pending: pending == 0)


async def test_429_waits_for_retry_after(outbox: Outbox, receiver: Receiver) -> None:
    receiver.responses = [(429, {"Retry-After": "120"})]
    outbox.store.submit("hub", "x", {})
    await receiver.wait_for(1)
    [row] = await wait_until(outbox.rows, lambda rows: rows[0]["attempts"] == 1)
    assert 115 < row["next_try"] - time.time() <= 120
    assert row["last_error"] == "HTTP 429"


async def test_a_timeout_counts_as_throttled(tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay = 2.0
    hub = endpoint(receiver.url, timeout="500ms")
    async with Outbox(tmp_path / "o.db", {"hub": hub}) as ob:
        ob.store.submit("hub", "x", {})
        # (not receiver.wait_for: on a loaded box the request may time out before
        # the receiver's handler even starts, which is a timeout all the same)
        [row] = await wait_until(ob.rows, lambda rows: rows[0]["attempts"] == 1)
        assert row["last_error"] == "timed out after 0.5s"
        assert row["attempts"] == 1
        assert row["next_try"] - time.time() > 55


async def test_a_timeout_over_a_kept_connection_counts_the_same(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A row sent from the commit over a kept-alive connection (no task) is bounded by
    the same timeout, recorded the same way, and its connection is not used again."""
    hub = endpoint(receiver.url, timeout="500ms")
    async with Outbox(tmp_path / "o.db", {"hub": hub}) as ob:
        ob.store.submit("hub", "first", {})
        await receiver.wait_for(1)
        await wait_until(ob.rows, lambda rows: not rows)  # delivered: its connection is kept
        receiver.delay = 2.0
        ob.store.submit("hub", "slow", {})
        await receiver.wait_for(2)
        assert len(ob.delivery._at_once) == 1  # sent without a task, its timer running
        [row] = await wait_until(ob.rows, lambda rows: rows and rows[0]["attempts"] == 1)
        assert row["last_error"] == "timed out after 0.5s"
        assert row["next_try"] - time.time() > 55
        assert ob.delivery._at_once == {}  # its timer is gone with it
        assert ob.delivery._plain._idle.get(("127.0.0.1", receiver.port), []) == []


async def test_a_row_that_cannot_be_sent_at_once_goes_the_usual_way(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error while sending from the commit's call (a bug, say) neither stops what the
    commit tells others (its waiters) nor loses the row: the task's way sends it."""
    async with Outbox(tmp_path / "o.db", {"hub": endpoint(receiver.url)}) as ob:
        ob.store.submit("hub", "first", {})
        await receiver.wait_for(1)
        await wait_until(ob.rows, lambda rows: not rows)  # its connection is kept
        real, calls = shapes.outgoing, []

        def flaky(*args: Any) -> Any:
            calls.append(args)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            return real(*args)

        monkeypatch.setattr(delivery_module, "outgoing", flaky)
        ob.store.submit("hub", "second", {})
        await asyncio.wait_for(ob.store.flushed(), 5)
        got = await receiver.wait_for(2)
    assert got[1].json["type"] == "second"
    assert len(calls) == 2


async def test_connection_refused_while_offline_burns_no_attempts_and_resumes(
    tmp_path: Path, receiver: Receiver
) -> None:
    await receiver.stop()  # the only endpoint is unreachable: the uplink is down
    hub = endpoint(receiver.url, max_age="1s")
    async with Outbox(tmp_path / "o.db", {"hub": hub}) as ob:
        ids = [ob.store.submit("hub", "n", {"n": n}) for n in range(5)]
        await asyncio.sleep(2.0)  # twice max_age: nothing may die while offline
        rows = await ob.rows()
        assert [r["attempts"] for r in rows] == [0] * 5
        assert rows[0]["last_error"].startswith("uplink down: cannot connect")
        assert ob.delivery.link_down
        await receiver.start()  # the link comes back
        got = await receiver.wait_for(5, timeout=5)
        assert [r.headers["webhook-id"] for r in got] == ids  # in order
        assert not ob.delivery.link_down


async def test_a_failing_endpoint_trips_the_breaker_and_never_blocks_a_healthy_one(
    tmp_path: Path, receiver: Receiver
) -> None:
    broken = Receiver(free_port(), responses=[(500, {})] * 1000)
    await broken.start()
    endpoints = {
        "broken": endpoint(broken.url, retry=["10ms"], concurrency=4),
        "hub": endpoint(receiver.url),
    }
    try:
        async with Outbox(tmp_path / "o.db", endpoints, breaker_probe=0.5) as ob:
            for n in range(20):
                ob.store.submit("broken", "n", {"n": n})
            healthy = [ob.store.submit("hub", "n", {"n": n}) for n in range(20)]
            got = await receiver.wait_for(20)
            assert [r.headers["webhook-id"] for r in got] == healthy
            await asyncio.sleep(1.0)
            state = ob.delivery.describe()["endpoints"]["broken"]
            assert state["breaker"] == "open"
            # without the breaker: 20 rows every ~10ms for a second, hundreds of requests
            assert len(broken.received) < 20
            broken.responses = []  # it recovers: the next probe closes the circuit
            await broken.wait_for(25, timeout=10)
            await wait_until(
                lambda: value_of(ob.delivery.describe()["endpoints"]["broken"]["breaker"]),
                lambda breaker: breaker == "closed",
            )
    finally:
        await broken.stop()


async def test_the_outbox_survives_a_full_disk_without_losing_committed_rows(
    tmp_path: Path,
) -> None:
    dead_end = endpoint("http://127.0.0.1:9/", retry=["1h"])
    async with Outbox(tmp_path / "o.db", {"hub": dead_end}) as ob:
        kept = ob.store.submit("hub", "kept", {})
        await ob.store.flushed()
        # the disk is full: SQLite may not grow the database any more
        pages = await ob.store.call(lambda db: db.execute("PRAGMA page_count").fetchone()[0])
        await ob.store.call(lambda db: db.execute(f"PRAGMA max_page_count={pages}"))
        for n in range(200):
            ob.store.submit("hub", "lost", {"pad": "x" * 2000, "n": n})
        await ob.store.flushed()
        rows = await ob.rows()
        assert rows[0]["id"] == kept
        assert len(rows) < 20  # the first of the burst fitted in the last free page
        stats = await ob.stats()
        assert stats["counters"]["write_errors"] == 201 - len(rows)
        await ob.store.call(lambda db: db.execute("PRAGMA max_page_count=1073741823"))
        again = ob.store.submit("hub", "after", {})
        await ob.store.flushed()
        assert [r["id"] for r in await ob.rows()][-1] == again
        assert (await ob.rows())[0]["id"] == kept


async def test_custom_headers_and_rotated_secrets_are_sent(
    tmp_path: Path, receiver: Receiver
) -> None:
    new_secret = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    hub = endpoint(receiver.url, secret=[new_secret, SECRET], headers={"Authorization": "Bearer x"})
    async with Outbox(tmp_path / "o.db", {"hub": hub}) as ob:
        ob.store.submit("hub", "x", {})
        [got] = await receiver.wait_for(1)
    assert got.headers["authorization"] == "Bearer x"
    assert len(got.headers["webhook-signature"].split()) == 2
    assert verify([SECRET], got.headers, got.body, now=time.time())
    assert verify([new_secret], got.headers, got.body, now=time.time())


def test_schema_versions_are_migrated_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    """An outbox from before ``user_version`` is brought up to date; one written by a
    newer gateway is refused with a message that says so, never silently misread."""
    path = tmp_path / "outbox.db"
    old = sqlite3.connect(path)
    old.executescript(database.SCHEMA)  # the tables as released before migrations existed
    old.close()
    db = database.open_database(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(database.MIGRATIONS)
    db.execute(f"PRAGMA user_version={len(database.MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(OutboxError, match="newer gateway"):
        database.open_database(path)


async def test_after_an_outage_everything_queued_arrives_soon_after_the_endpoint_is_back(
    tmp_path: Path,
) -> None:
    """503 without Retry-After for 3 s: the rows' own retries are a minute away
    (the throttle delay), but the breaker's probe finds the endpoint back and the
    whole queue leaves at once."""
    hub = Receiver(free_port(), responses=[(503, {})] * 100_000)
    await hub.start()
    endpoints = {"hub": endpoint(hub.url, retry=["1s", "1m"], concurrency=4)}
    try:
        async with Outbox(tmp_path / "o.db", endpoints, breaker_probe=0.5) as ob:
            ids = [ob.store.submit("hub", "n", {"n": n}) for n in range(40)]
            await asyncio.sleep(3.0)
            assert ob.delivery.describe()["endpoints"]["hub"]["breaker"] == "open"
            assert len(hub.received) < 40  # probed, not hammered
            hub.responses = []
            back = time.monotonic()
            await wait_until(
                lambda: value_of(
                    {r.headers["webhook-id"] for r in hub.received if r.status == 200}
                ),
                lambda delivered: delivered >= set(ids),
                timeout=10,
            )
            # the probe interval had grown to at most 0.5 * 1.5**k s: a few seconds here
            assert time.monotonic() - back < 8
            # the last answers may still be on their way back to the gateway
            await wait_until(lambda: ob.state("pending"), lambda pending: pending == 0)
    finally:
        await hub.stop()


def test_an_outbox_of_the_previous_schema_keeps_its_rows_and_numbers_new_ones_after_them(
    tmp_path: Path,
) -> None:
    """Schema 3 drops AUTOINCREMENT (its sqlite_sequence page was one more page written
    per event): the rows, their order and their state survive the rebuild."""
    path = tmp_path / "outbox.db"
    old = sqlite3.connect(path, isolation_level=None)
    for script in database.MIGRATIONS[:2]:
        old.executescript(script)
    old.execute("PRAGMA user_version=2")
    for n, state in enumerate(["pending", "dead", "pending"]):
        old.execute(
            "INSERT INTO messages (id, endpoint, event, body, created, next_try, state, request)"
            " VALUES (?, 'hub', 'e', ?, 1.0, 2.0, ?, ?)",
            (f"msg_{n}", f'{{"n": {n}}}'.encode(), state, None if n else '{"method": "PUT"}'),
        )
    old.execute("DELETE FROM messages WHERE id = 'msg_2'")  # its seq (3) was given once
    old.close()
    db = database.open_database(path)
    rows = db.execute("SELECT seq, id, state, body, request FROM messages ORDER BY seq").fetchall()
    assert rows == [
        (1, "msg_0", "pending", b'{"n": 0}', '{"method": "PUT"}'),
        (2, "msg_1", "dead", b'{"n": 1}', None),
    ]
    (table,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'messages'").fetchone()
    assert "AUTOINCREMENT" not in table
    indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "messages_tried" in indexes  # schema 4: only tried rows are indexed
    assert not {"messages_queue", "messages_due"} & indexes
    assert database.last_seq(db) == 2  # the store numbers new rows from here
    db.close()


async def test_rows_within_the_commit_window_share_one_commit(tmp_path: Path) -> None:
    """``outbox.commit_window``: rows that come within it of the first are one
    transaction (one fsync), told to the loop once."""
    store = OutboxStore(tmp_path / "o.db", commit_window=0.3)
    commits: list[int] = []
    store.on_commit = lambda committed: commits.append(len(committed.rows))
    store.start()
    try:
        mark = store.mark()
        store.submit("hub", "a", {})
        await asyncio.sleep(0.1)
        store.submit("hub", "b", {})
        await asyncio.sleep(0.05)
        store.submit("hub", "c", {})
        await store.flushed(since=mark)
        assert commits == [3]
        store.submit("hub", "d", {})  # a new window
        await store.flushed()
        assert commits == [3, 1]
    finally:
        store.stop()


async def test_plain_http_and_aiohttp_paths_send_the_same_request(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Plain http:// goes through the lean client; a URL with credentials through
    aiohttp (which sends them as Basic auth). The receiver sees the same webhook."""
    lean = endpoint(receiver.url + "?k=v", headers={"X-Static": "s"})
    with_user = endpoint(
        f"http://u:p@127.0.0.1:{receiver.port}/hook?k=v", headers={"X-Static": "s"}
    )
    async with Outbox(tmp_path / "o.db", {"lean": lean, "aio": with_user}) as ob:
        ob.store.submit("lean", "n", {"n": 1})
        await receiver.wait_for(1)
        ob.store.submit("aio", "n", {"n": 1})
        first, second = await receiver.wait_for(2)
        await wait_until(lambda: ob.state("pending"), lambda pending: pending == 0)
    assert "authorization" not in first.headers
    assert second.headers.pop("authorization") == "Basic dTpw"
    assert (first.method, first.path) == (second.method, second.path) == ("POST", "/hook?k=v")
    assert first.json["data"] == second.json["data"] == {"n": 1}
    for got in (first, second):
        assert got.headers["x-static"] == "s"
        assert got.headers["content-type"] == "application/json"
        assert got.headers["content-length"] == str(len(got.body))
        assert got.headers["user-agent"].startswith("edge-gateway/")
        assert verify([SECRET], got.headers, got.body, now=time.time()) == got.headers["webhook-id"]
    assert set(first.headers) - set(second.headers) == set()


async def test_an_attempt_that_cannot_go_at_once_is_signed_once(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request is built and signed once an attempt, also when it goes on the task's way
    (through aiohttp here: credentials in the URL) after the lean client could not take it."""
    real, calls = shapes.outgoing, []

    def counted(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(delivery_module, "outgoing", counted)
    aio = endpoint(f"http://u:p@127.0.0.1:{receiver.port}/hook")
    async with Outbox(tmp_path / "o.db", {"aio": aio}) as ob:
        ob.store.submit("aio", "n", {"n": 1})
        (got,) = await receiver.wait_for(1)
        await wait_until(lambda: ob.state("pending"), lambda pending: pending == 0)
    assert len(calls) == 1
    assert verify([SECRET], got.headers, got.body, now=time.time()) == got.headers["webhook-id"]
