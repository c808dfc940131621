"""The outbox against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config.models import WebhookEndpoint
from gateway.outbox import store as db_ops
from gateway.outbox.delivery import Delivery
from gateway.outbox.signing import verify
from gateway.outbox.store import OutboxStore
from tests.conftest import SECRET, Receiver


class Outbox:
    def __init__(self, path: Path, endpoints: dict[str, WebhookEndpoint], **kw: Any) -> None:
        self.store = OutboxStore(path, **kw)
        self.delivery = Delivery(self.store, endpoints, jitter=lambda: 0.5)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Outbox:
        loop = asyncio.get_running_loop()
        self.store.start()
        self.store.on_commit = lambda eps: loop.call_soon_threadsafe(self.delivery.wake, eps)
        self.task = asyncio.create_task(self.delivery.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task
        self.store.stop()

    async def stats(self) -> dict[str, Any]:
        return await self.store.call(lambda db: db_ops.stats(db, time.time()))


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
    await asyncio.sleep(0.3)
    stats = await outbox.stats()
    assert stats["endpoints"]["hub"]["disabled"] is True
    assert stats["pending"] == 1
    assert len(receiver.received) == 1  # no more attempts while disabled
    await outbox.store.call(lambda db: db_ops.enable_endpoint(db, "hub", time.time()))
    outbox.delivery.wake_all()
    await receiver.wait_for(2)


async def test_exhausted_rows_become_dead_letters_and_retry_delivers_them(
    tmp_path: Path, receiver: Receiver
) -> None:
    hub = endpoint(receiver.url, max_age="250ms")
    async with Outbox(tmp_path / "o.db", {"hub": hub}) as ob:
        receiver.responses = [(500, {})] * 3
        msg_id = ob.store.submit("hub", "x", {})
        await receiver.wait_for(3)
        await asyncio.sleep(0.3)
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
        await asyncio.sleep(0.3)
        stats = await ob.stats()
        assert stats["pending"] == 3
        assert stats["counters"]["dropped_oldest"] == 2


async def test_a_full_outbox_can_reject_new_webhooks_instead(tmp_path: Path) -> None:
    dead_end = endpoint("http://127.0.0.1:9/", retry=["1h"])
    async with Outbox(
        tmp_path / "o.db", {"hub": dead_end}, max_rows=2, when_full="reject_new"
    ) as ob:
        first = [ob.store.submit("hub", "n", {"n": n}) for n in range(4)]
        await asyncio.sleep(0.3)
        rows = await ob.store.call(lambda db: db_ops.list_messages(db))
        assert [r["id"] for r in rows] == first[:2]
        assert (await ob.stats())["counters"]["dropped_new"] == 2


async def test_max_bytes_caps_the_outbox_by_body_size(tmp_path: Path) -> None:
    dead_end = endpoint("http://127.0.0.1:9/", retry=["1h"])
    async with Outbox(tmp_path / "o.db", {"hub": dead_end}, max_bytes=1000) as ob:
        ids = [ob.store.submit("hub", "n", {"pad": "x" * 300}) for _ in range(5)]
        await asyncio.sleep(0.3)
        rows = await ob.store.call(lambda db: db_ops.list_messages(db))
        assert [r["id"] for r in rows] == ids[-2:]  # ~360 bytes each: two fit in 1000
