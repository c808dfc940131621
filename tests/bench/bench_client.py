"""The webhook POST itself: the gateway's lean HTTP/1.1 client against aiohttp's.

Both send the same signed request (the bench's body and Standard Webhooks
headers, 8 in flight) to the benchmark receiver in its own process
(tests/bench/sink.py) and read its answer; each round runs both, in turn.
Prints the client process's CPU per request (``time.process_time``, so the
receiver's share is not in it) and requests per second. aiohttp is the
baseline: it is what delivery used for every endpoint before, and still
uses for ``https://``. Asserts nothing about speed.

    python tests/bench/bench_client.py               # 3 rounds of 8,000 requests
    BENCH_SMOKE=1 python tests/bench/bench_client.py  # 1 round of 800 (CI)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import yarl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.outbox.http11 import Client
from tests.bench.bench_e2e import Sink

SMOKE = bool(os.environ.get("BENCH_SMOKE"))
ROUNDS = 1 if SMOKE else 3
REQUESTS = 800 if SMOKE else 8_000
IN_FLIGHT = 8
BODY = (
    b'{"type":"bench","timestamp":"2026-12-04T00:00:00.000Z",'
    b'"data":{"seq":1,"sent_ns":0,"value":21.5}}'
)
HEADERS = {
    "content-type": "application/json",
    "webhook-id": "msg_2xFqbench",
    "webhook-timestamp": "1764806400",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
}

Post = Callable[[], Awaitable[int]]


async def measure(post: Post) -> tuple[float, float]:
    """(CPU microseconds per request, requests per second) for REQUESTS posts."""

    async def worker(count: int) -> None:
        for _ in range(count):
            status = await post()
            assert status == 200, status

    await asyncio.gather(*(worker(25) for _ in range(IN_FLIGHT)))  # connections open, warm
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(REQUESTS // IN_FLIGHT) for _ in range(IN_FLIGHT)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / REQUESTS * 1e6, REQUESTS / wall


async def with_aiohttp(url: str) -> tuple[float, float]:
    """The way delivery calls aiohttp (its session options, timeout and read)."""
    target = yarl.URL(url)
    timeout = aiohttp.ClientTimeout(total=10, sock_connect=5)
    connector = aiohttp.TCPConnector(limit=256, limit_per_host=64)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def post() -> int:
            async with session.request(
                "POST", target, data=BODY, headers=HEADERS, allow_redirects=False, timeout=timeout
            ) as resp:
                await resp.content.read(2048)
                resp.headers.get("Retry-After")
                return resp.status

        return await measure(post)


async def with_lean(url: str) -> tuple[float, float]:
    """The way delivery calls the lean client (its own timeout around each request)."""
    target = yarl.URL(url)
    assert target.raw_host is not None
    assert target.port is not None
    host, port, path = target.raw_host, target.port, target.raw_path_qs
    client = Client("edge-gateway/bench")

    async def post() -> int:
        async with asyncio.timeout(10):
            answer = await client.request("POST", host, port, path, HEADERS, BODY, 5.0)
        return answer.status

    try:
        return await measure(post)
    finally:
        client.close()


def main() -> None:
    sink = Sink()
    url = sink.url + "/hook"
    results: dict[str, list[tuple[float, float]]] = {"aiohttp": [], "lean": []}
    try:
        for _ in range(ROUNDS):
            results["aiohttp"].append(asyncio.run(with_aiohttp(url)))
            results["lean"].append(asyncio.run(with_lean(url)))
            sink.get("/reset")
    finally:
        sink.proc.terminate()
        sink.proc.wait(10)
    print(f"webhook POST to a local aiohttp receiver, {IN_FLIGHT} in flight, {REQUESTS} a round:")
    for name, label in (("lean", "gateway's HTTP/1.1 client"), ("aiohttp", "aiohttp (baseline)")):
        cpu = [c for c, _ in results[name]]
        rate = [r for _, r in results[name]]
        print(
            f"  {label:27s} CPU {statistics.median(cpu):5.0f} us/request "
            f"(rounds {', '.join(f'{c:.0f}' for c in cpu)}), "
            f"{statistics.median(rate):,.0f} req/s"
        )
    lean = statistics.median(c for c, _ in results["lean"])
    base = statistics.median(c for c, _ in results["aiohttp"])
    print(f"  ratio: {lean / base:.2f} of aiohttp's CPU per request")


if __name__ == "__main__":
    main()
