"""How soon the outbox catches up after an endpoint's outage.

Webhooks are queued at a steady rate into the gateway's outbox (its real
store and delivery, in this process) while a local receiver answers 503
(without ``Retry-After``) for a while, then 200. Prints, for each outage
length, how long after the endpoint came back the last queued webhook
arrived, how many requests the outage cost, and that none was lost. The
baseline in the same run is a receiver that never fails. Asserts nothing.

    python tests/bench/bench_recovery.py                # 15 s and 90 s outages at 100/s
    BENCH_SMOKE=1 python tests/bench/bench_recovery.py  # a 3 s outage at 50/s (CI)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.config.models import WebhookEndpoint
from gateway.config.storage import OutboxSection
from gateway.outbox.service import Outbox
from tests.conftest import free_port

SMOKE = bool(os.environ.get("BENCH_SMOKE"))
RATE = 50 if SMOKE else 100
OUTAGES = [0.0, 3.0] if SMOKE else [0.0, 15.0, 90.0]


async def run(outage: float, tmp: Path) -> dict[str, float]:
    arrived: dict[str, float] = {}
    requests = 0
    down_until = 0.0

    async def hook(request: web.Request) -> web.Response:
        nonlocal requests
        await request.read()
        requests += 1
        if time.monotonic() < down_until:
            return web.Response(status=503, text="down")
        arrived.setdefault(request.headers["webhook-id"], time.monotonic())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    endpoint = WebhookEndpoint.model_validate(
        {"url": f"http://127.0.0.1:{port}/hook", "concurrency": 8}
    )
    outbox = Outbox(tmp / f"o{outage:g}.db", OutboxSection(), {"hub": endpoint})
    outbox.__enter__()
    task = asyncio.create_task(outbox.run())
    start = time.monotonic()
    down_until = start + outage
    ids = []
    duration = outage + 5.0
    n = 0
    while (now := time.monotonic()) < start + duration:
        due = int((now - start) * RATE)
        while n < due:
            ids.append(outbox.submit("hub", "bench", {"n": n}))
            n += 1
        await asyncio.sleep(0.005)
    queued_until = time.monotonic()
    deadline = queued_until + 120
    while len(arrived) < len(ids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    last = max(arrived.values(), default=queued_until)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    outbox.__exit__(None, None, None)
    await runner.cleanup()
    back = start + outage
    queued_in_outage = sum(1 for i in range(len(ids)) if i / RATE < outage)
    during = [arrived[i] for i in ids[:queued_in_outage] if i in arrived]
    return {
        "outage": outage,
        "queued": len(ids),
        "lost": len(ids) - len(set(ids) & set(arrived)),
        "requests": requests,
        "caught_up": (max(during) - back) if during else 0.0,
        "last": last - queued_until,
    }


async def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        results = [await run(outage, Path(name)) for outage in OUTAGES]
    print(f"recovery after a 503 outage (no Retry-After), {RATE} webhooks/s, concurrency 8")
    print("  outage  queued  lost  requests  all queued in the outage delivered, after it ended")
    for r in results:
        caught = f"{r['caught_up']:.1f} s" if r["outage"] else "(baseline: no outage)"
        print(
            f"  {r['outage']:5.0f}s  {r['queued']:6.0f}  {r['lost']:4.0f}  {r['requests']:8.0f}"
            f"  {caught}"
        )


if __name__ == "__main__":
    asyncio.run(main())
