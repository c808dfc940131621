"""Outbox throughput, latency, backlog drain and disk writes, against a local receiver.

The receiver runs in its own process (tests/bench/sink.py). Figures printed:

(a) a burst of N webhooks delivered, concurrency 1 and 8, zero loss checked,
    beside a baseline: the same POSTs from a bare aiohttp client with no outbox;
(b) enqueue-to-receive latency p50/p99 at 200 webhooks/s;
(c) the drain rate of a backlog and the RSS while it drains;
(d) bytes written to disk per webhook (/proc/self/io) and the database size.

    python tests/bench/bench_outbox.py            # 20,000 / 1,000 / 100,000
    BENCH_SMOKE=1 python tests/bench/bench_outbox.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.config.models import WebhookEndpoint
from gateway.config.storage import OutboxSection
from gateway.outbox import service
from tests.conftest import SECRET, free_port

SMOKE = bool(os.environ.get("BENCH_SMOKE"))
BURST = 2_000 if SMOKE else 20_000
RATE_EVENTS = 200 if SMOKE else 1_000
BACKLOG = 5_000 if SMOKE else 100_000


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def files_size(directory: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in directory.glob(pattern))


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        script = Path(__file__).with_name("sink.py")
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port)])
        self.url = f"http://127.0.0.1:{self.port}"

    async def wait_up(self, session: aiohttp.ClientSession) -> None:
        for _ in range(100):
            try:
                async with session.get(self.url + "/stats"):
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        raise RuntimeError("sink did not start")

    async def get(self, session: aiohttp.ClientSession, path: str) -> object:
        async with session.request("POST" if path == "/reset" else "GET", self.url + path) as r:
            return await r.json()

    async def wait_unique(
        self, session: aiohttp.ClientSession, count: int, peak: list[float]
    ) -> None:
        while True:
            stats = await self.get(session, "/stats")
            assert isinstance(stats, dict)
            peak[0] = max(peak[0], rss_mib())
            if stats["unique"] >= count:
                return
            await asyncio.sleep(0.02)


class Outbox(service.Outbox):
    """The gateway's outbox, its store started apart from its delivery (to time each)."""

    def __init__(self, path: Path, url: str, concurrency: int, shaped: bool = False) -> None:
        shape = {"format": "json", "body": TEMPLATED_BODY} if shaped else {}
        endpoint = WebhookEndpoint.model_validate(
            {"url": url + "/hook", "secret": SECRET, "concurrency": concurrency, **shape}
        )
        section = OutboxSection(max_rows=1_000_000, max_bytes=1 << 34)
        super().__init__(path, section, {"sink": endpoint})
        self.task: asyncio.Task[None] | None = None

    def start_store(self) -> None:
        self.__enter__()

    def start_delivery(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.__exit__(None, None, None)


TEMPLATED_BODY = {"sensor": "freezer", "n": "{{ data.n }}", "text": "{{ data.reading }} °C"}
RATES: dict[str, float] = {}


async def burst(
    tmp: Path, sink: Sink, session: aiohttp.ClientSession, conc: int, shaped: bool = False
) -> None:
    await sink.get(session, "/reset")
    name = f"burst{conc}{'-shaped' if shaped else ''}"
    ob = Outbox(tmp / f"{name}.db", sink.url, conc, shaped)
    ob.start_store()
    ob.start_delivery()
    peak = [rss_mib()]
    before = written_bytes()
    start = time.perf_counter()
    for n in range(BURST):  # as a rule's webhook action does (a shaped one renders here)
        ob.submit("sink", "bench.burst", {"n": n, "reading": 21.5})
    await sink.wait_unique(session, BURST, peak)
    elapsed = time.perf_counter() - start
    RATES[name] = BURST / elapsed
    if shaped:
        standard = RATES[f"burst{conc}"]
        print(
            f"(a') the same burst to a templated JSON endpoint: {BURST / elapsed:,.0f} webhooks/s,"
            f" {BURST / elapsed / standard:.2f}x the standard endpoint's {standard:,.0f}/s"
        )
        await ob.stop()
        return
    await asyncio.sleep(0.3)
    written = written_bytes() - before
    stats = await sink.get(session, "/stats")
    await ob.stop()
    db_files = files_size(tmp, f"burst{conc}.db*")
    assert isinstance(stats, dict)
    print(
        f"(a) burst of {BURST:,}, concurrency {conc}: {BURST / elapsed:,.0f} webhooks/s delivered,"
        f" {stats['unique']:,} unique ids received ({stats['received'] - stats['unique']} "
        f"duplicates, {BURST - stats['unique']} lost), peak RSS {peak[0]:.0f} MiB"
    )
    if conc == 8:
        print(
            f"(d) disk writes: {written / BURST:,.0f} bytes per webhook (/proc/self/io), "
            f"database + WAL after delivery: {db_files / 1024:.0f} KiB"
        )


async def baseline(sink: Sink, session: aiohttp.ClientSession, conc: int) -> None:
    await sink.get(session, "/reset")
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(BURST):
        queue.put_nowait(n)
    body = b'{"type":"bench.burst","timestamp":"2026-01-01T00:00:00.000Z","data":{"n":1}}'

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            async with session.post(
                sink.url + "/hook", data=body, headers={"webhook-id": f"b{queue.qsize()}"}
            ) as r:
                await r.read()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    elapsed = time.perf_counter() - start
    print(
        f"    baseline, bare aiohttp POSTs, no outbox, concurrency {conc}: "
        f"{BURST / elapsed:,.0f} requests/s"
    )


async def latency(tmp: Path, sink: Sink, session: aiohttp.ClientSession) -> None:
    await sink.get(session, "/reset")
    ob = Outbox(tmp / "latency.db", sink.url, 1)
    ob.start_store()
    ob.start_delivery()
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for n in range(RATE_EVENTS):
        target = start + n / 200
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[ob.store.submit("sink", "bench.rate", {"n": n})] = time.time()
    await sink.wait_unique(session, RATE_EVENTS, [0.0])
    arrivals = await sink.get(session, "/dump")
    await ob.stop()
    assert isinstance(arrivals, list)
    lat = sorted((t - sent[i]) * 1000 for i, t, *_ in arrivals if i in sent)
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(
        f"(b) {RATE_EVENTS:,} webhooks at 200/s, concurrency 1: enqueue -> received "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {lat[-1]:.2f} ms"
    )


async def backlog(tmp: Path, sink: Sink, session: aiohttp.ClientSession) -> None:
    await sink.get(session, "/reset")
    ob = Outbox(tmp / "backlog.db", sink.url, 8)
    ob.start_store()
    for n in range(BACKLOG):
        ob.store.submit("sink", "bench.backlog", {"n": n, "reading": 21.5})
        if n % 5000 == 0:
            await ob.store.flushed()
    await ob.store.flushed()
    rss_before = rss_mib()
    peak = [rss_before]
    start = time.perf_counter()
    ob.start_delivery()  # the receiver "comes back"
    await sink.wait_unique(session, BACKLOG, peak)
    elapsed = time.perf_counter() - start
    await ob.stop()
    print(
        f"(c) backlog of {BACKLOG:,} drained at {BACKLOG / elapsed:,.0f} rows/s "
        f"(concurrency 8); RSS {rss_before:.0f} MiB before, peak {peak[0]:.0f} MiB while "
        f"draining"
    )


async def main() -> None:
    sink = Sink()
    try:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp_name:
            tmp = Path(tmp_name)
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(connector=connector) as session:
                await sink.wait_up(session)
                print(
                    f"outbox benchmark ({'smoke' if SMOKE else 'full'} mode), RSS at start "
                    f"{rss_mib():.0f} MiB"
                )
                await burst(tmp, sink, session, 1)
                await baseline(sink, session, 1)
                await burst(tmp, sink, session, 8)
                await burst(tmp, sink, session, 8, shaped=True)
                await baseline(sink, session, 8)
                await latency(tmp, sink, session)
                await backlog(tmp, sink, session)
    finally:
        sink.proc.terminate()
        sink.proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
