"""The live event stream of a running gateway: what it carries, who may read it, and
that a client that does not read is dropped without slowing anyone."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api import stream as stream_module
from tests.conftest import Receiver, free_port, started, write_config

TOKEN, VIEWER = "t" * 32, "v" * 32


def config(tmp_path: Path, port: int, receiver: int) -> Path:
    return write_config(
        tmp_path,
        f"""
        gateway: {{name: shed, state_dir: {tmp_path / "state"}, simulate: true}}
        sensors:
          door: {{kind: virtual, type: binary}}
          note: {{kind: virtual, type: text}}
        actuators:
          light: {{gpio: 27}}
        webhooks:
          hub: {{url: "http://127.0.0.1:{receiver}/hook"}}
        server:
          listen: 127.0.0.1:{port}
          tokens:
            ops: {{token: {TOKEN}}}
            viewer: {{token: {VIEWER}, read_only: true}}
        rules:
          - id: door_light
            when: {{sensor: door, to: on}}
            then:
              - actuate: light
                state: on
              - webhook: hub
                event: door.open
        """,
    )


async def events(
    session: aiohttp.ClientSession, port: int, token: str = VIEWER
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(f"http://127.0.0.1:{port}/api/v1/events", headers=headers) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/event-stream"
        kind = ""
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield kind, json.loads(line[6:])


async def collect(
    port: int,
    done: Callable[[list[tuple[str, dict[str, Any]]]], bool],
    into: list[tuple[str, dict[str, Any]]],
    token: str = VIEWER,
) -> None:
    async with aiohttp.ClientSession() as session:
        async for kind, data in events(session, port, token):
            into.append((kind, data))
            if done(into):
                return


async def test_the_stream_carries_sensors_switches_traces_webhooks_and_warnings(
    tmp_path: Path, receiver: Receiver
) -> None:
    port = free_port()
    async with started(config(tmp_path, port, receiver.port)) as gw:
        assert gw.control is not None
        seen: list[tuple[str, dict[str, Any]]] = []
        wanted = {"hello", "sensor", "actuator", "trace", "webhook", "log"}

        def done(seen: list[tuple[str, dict[str, Any]]]) -> bool:
            delivered = any(k == "webhook" and d["outcome"] == "delivered" for k, d in seen)
            return delivered and wanted <= {k for k, _ in seen}

        reader = asyncio.create_task(collect(port, done, seen))
        while not gw.events.clients:
            await asyncio.sleep(0.01)
        await gw.control.set_sensor("door", True, "test")
        logging.getLogger("gateway.test").warning("a warning for the stream")
        await asyncio.wait_for(reader, 10)
        by_kind = {kind: data for kind, data in reversed(seen)}  # the first of each
        assert by_kind["hello"]["name"] == "shed"
        assert by_kind["sensor"] | {"time": 0} == {
            "id": "door",
            "value": True,
            "available": True,
            "time": 0,
        }
        assert by_kind["actuator"]["who"].startswith("rule door_light")
        assert by_kind["trace"]["rule"] == "door_light"
        assert by_kind["trace"]["result"] == "finished"
        outcomes = [d["outcome"] for k, d in seen if k == "webhook"]
        assert outcomes[:2] == ["queued", "delivered"]
        assert ("log", "a warning for the stream") in [(k, d.get("message")) for k, d in seen]


async def test_who_may_read_the_stream(tmp_path: Path, receiver: Receiver) -> None:
    port = free_port()
    async with started(config(tmp_path, port, receiver.port)), aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{port}/api/v1/events"
        async with s.get(url) as r:
            assert r.status == 401
        async with s.get(url, headers={"Authorization": "Bearer " + "x" * 32}) as r:
            assert r.status == 401
        seen: list[tuple[str, dict[str, Any]]] = []
        await asyncio.wait_for(collect(port, bool, seen, token=VIEWER), 5)
        assert seen[0][0] == "hello"


async def test_a_client_that_does_not_read_is_dropped_and_the_others_go_on(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A client that stops reading fills its buffer and is dropped (counted); a
    reading client sees every event, and the events' path is not slowed."""
    port = free_port()
    async with started(config(tmp_path, port, receiver.port)) as gw:
        control = gw.control
        assert control is not None
        reader = await asyncio.open_connection("127.0.0.1", port)  # a raw socket never read
        _, writer = reader
        head = f"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {VIEWER}\r\n"
        writer.write(head.encode() + b"\r\n")
        await writer.drain()
        seen: list[tuple[str, dict[str, Any]]] = []
        count = 8 * stream_module.BUFFER  # 4 KB each: more than the socket buffers hold
        filler = "x" * 4000
        async with aiohttp.ClientSession() as session:

            async def read_all() -> None:
                async for kind, data in events(session, port):
                    seen.append((kind, data))
                    if kind == "sensor" and data["value"] == f"n{count - 1}{filler}":
                        return

            task = asyncio.create_task(read_all())
            while len(gw.events.clients) < 2:
                await asyncio.sleep(0.01)
            start = time.perf_counter()
            for i in range(count):
                control.live.runtime.reading("note", f"n{i}{filler}", "test")
                if i % 50 == 0:  # let the reading client read (the stuck one cannot)
                    await asyncio.sleep(0)
                    for _ in range(1000):  # bounded: a slow machine's reader keeps up too
                        behind = min((c.queue.qsize() for c in gw.events.clients), default=0)
                        if behind < stream_module.BUFFER // 4:
                            break
                        await asyncio.sleep(0.001)
            took = time.perf_counter() - start
            await asyncio.wait_for(task, 10)
        assert gw.events.dropped == 1
        notes = [d["value"] for k, d in seen if k == "sensor"]
        assert notes == [f"n{i}{filler}" for i in range(count)]
        assert took < 5  # generous: the point is that it did not wait for the stuck client
        writer.close()


async def test_a_stop_ends_open_streams_at_once(tmp_path: Path, receiver: Receiver) -> None:
    port = free_port()
    seen: list[tuple[str, dict[str, Any]]] = []
    start = 0.0
    reader: asyncio.Task[None] | None = None
    async with started(config(tmp_path, port, receiver.port)) as gw:
        reader = asyncio.create_task(collect(port, lambda _: False, seen))
        while not gw.events.clients:
            await asyncio.sleep(0.01)
        start = time.monotonic()
    assert time.monotonic() - start < 5  # not aiohttp's 60 s wait for open connections
    assert reader is not None
    await asyncio.wait_for(reader, 5)


async def test_the_number_of_stream_clients_is_bounded(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "MAX_CLIENTS", 1)
    port = free_port()
    async with started(config(tmp_path, port, receiver.port)) as gw:
        first = asyncio.create_task(collect(port, lambda _: False, []))
        while not gw.events.clients:
            await asyncio.sleep(0.01)
        async with aiohttp.ClientSession() as s:
            headers = {"Authorization": f"Bearer {VIEWER}"}
            async with s.get(f"http://127.0.0.1:{port}/api/v1/events", headers=headers) as r:
                assert r.status == 503
                assert int(r.headers["Retry-After"]) >= 1
                assert (await r.json())["error"]["code"] == "busy"
    await asyncio.wait_for(first, 5)
