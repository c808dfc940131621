"""Sensor injection -> webhook arrival latency, and the idle daemon's memory.

Starts the daemon as a subprocess in simulation with a local aiohttp
receiver, injects motion over the API N times and times each webhook's
arrival. The baseline is a bare HTTP POST to the same receiver in the same
run, so the ratio says what the gateway adds (rule, outbox commit with
fsync, signing, delivery). Prints figures; asserts nothing about speed.

    python tests/bench/bench_latency.py          # 100 events
    BENCH_SMOKE=1 python tests/bench/bench_latency.py   # 10 events (CI)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import TOKEN, Daemon, demo_like_config, free_port

N = 10 if os.environ.get("BENCH_SMOKE") else 100


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def receiver() -> tuple[web.AppRunner, str, asyncio.Queue[float]]:
    """A local aiohttp receiver: its runner, its URL, and each webhook's arrival time."""
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        arrived.put_nowait(time.perf_counter())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/hook", arrived


async def main() -> None:
    runner, url, arrived = await receiver()

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = demo_like_config(Path(tmp), port, url)
        daemon = Daemon(config, port, Path(tmp) / "daemon.log")
        daemon.start()
        try:
            await daemon.wait_ready()
            await asyncio.sleep(2.0)
            assert daemon.proc is not None
            idle_rss = rss_kib(daemon.proc.pid)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            latencies, baseline = [], []
            async with aiohttp.ClientSession(headers=headers) as s:
                sensor = f"{daemon.base}/api/v1/sensors/hallway_motion"
                for _ in range(N):
                    start = time.perf_counter()
                    async with s.post(sensor, json={"value": "on"}) as r:
                        assert r.status == 200
                    latencies.append(await asyncio.wait_for(arrived.get(), 10) - start)
                    async with s.post(sensor, json={"value": "off"}) as r:
                        assert r.status == 200
                    start = time.perf_counter()
                    async with s.post(url, data=b"{}") as r:
                        assert r.status == 200
                    baseline.append(await arrived.get() - start)
            busy_rss = rss_kib(daemon.proc.pid)
        finally:
            daemon.proc.terminate() if daemon.proc else None
            daemon.wait(10)
    await runner.cleanup()

    ms = [x * 1000 for x in latencies]
    base = [x * 1000 for x in baseline]
    print(f"injection -> webhook arrival, {N} events (simulated GPIO, local receiver)")
    print(
        f"  gateway : median {statistics.median(ms):.2f} ms  p90 {pct(ms, 0.9):.2f} ms"
        f"  max {max(ms):.2f} ms"
    )
    print(f"  baseline: median {statistics.median(base):.2f} ms (bare HTTP POST to the receiver)")
    print(f"  ratio   : {statistics.median(ms) / statistics.median(base):.1f}x the bare POST")
    print(f"idle daemon RSS: {idle_rss / 1024:.1f} MiB; after the run: {busy_rss / 1024:.1f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
