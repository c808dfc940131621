"""What dashboards watching the live event stream cost the event path.

The daemon runs as a subprocess in simulation with a local aiohttp receiver.
After a warm-up, each phase measures, with 10, 0, 10 and 0 clients on
``GET /api/v1/events`` (read by another process over raw sockets, counting
events in C: browsers run on other machines, and on a 2-core bench box their
parsing would otherwise take the daemon's CPU and be counted as the stream's):

* injection -> webhook arrival latency (p50, p99) over the API;
* a burst of readings of a virtual sensor, each one a webhook, delivered/s;
* the daemon's RSS, and history.db's commits and rows written per second.

The baseline is the same run without clients. Prints figures; asserts nothing.

    python tests/bench/bench_stream.py                  # 300 events, bursts of 2,000
    BENCH_SMOKE=1 python tests/bench/bench_stream.py    # 20 events, bursts of 200 (CI)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_latency import pct, receiver, rss_kib
from tests.conftest import TOKEN, Daemon, free_port, write_config

SMOKE = bool(os.environ.get("BENCH_SMOKE"))
N = 20 if SMOKE else 300
BURST = 200 if SMOKE else 2000
CLIENTS = 10

READERS = textwrap.dedent(
    """
    import selectors, signal, socket, sys
    host, port = sys.argv[1].split(":")
    token, n = sys.argv[2], int(sys.argv[3])
    request = (
        f"GET /api/v1/events HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n"
    ).encode()
    selector, counts = selectors.DefaultSelector(), {}
    for i in range(n):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(request)
        selector.register(sock, selectors.EVENT_READ, i)
        counts[i] = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("ready", flush=True)
    while not stop:
        for key, _ in selector.select(0.2):
            data = key.fileobj.recv(1 << 20)
            counts[key.data] += data.count(b"\\nevent: ")
    print(min(counts.values()), max(counts.values()), flush=True)
    """
)
"""Readers as cheap as can be (a selector over raw sockets, counting events in C): what
they cost is the gateway's, not their parsing."""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def main() -> None:
    runner, url, arrived = await receiver()

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = write_config(
            Path(tmp),
            f"""
            gateway: {{name: bench, state_dir: {tmp}/state, simulate: true}}
            sensors:
              hallway_motion: {{gpio: 17, kind: motion}}
              freezer: {{kind: virtual}}
            actuators:
              hallway_light: {{gpio: 27}}
            webhooks:
              hub: {{url: "{url}", concurrency: 8}}
            server:
              listen: 127.0.0.1:{port}
              rate_limit: {{requests: 1000000, per: 1s}}
              max_in_flight: 256
              tokens:
                bench: {{token: {TOKEN}}}
            rules:
              - id: motion
                when: {{sensor: hallway_motion, to: on}}
                then:
                  - actuate: hallway_light
                    state: on
                  - webhook: hub
                    event: motion.detected
              - id: freezer
                when: {{sensor: freezer, changes: true}}
                then:
                  - webhook: hub
                    event: freezer.reading
                    data: {{t: "{{{{ event.value }}}}"}}
            """,
        )
        daemon = Daemon(config, port, Path(tmp) / "daemon.log")
        daemon.start()
        results = []
        try:
            await daemon.wait_ready()
            await asyncio.sleep(1.0)
            assert daemon.proc is not None
            pid = daemon.proc.pid
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession(headers=headers) as s:
                value = 0

                async def phase(clients: int) -> dict[str, float]:
                    nonlocal value
                    readers = None
                    if clients:
                        url = daemon.base.removeprefix("http://")
                        readers = await asyncio.create_subprocess_exec(
                            *("nice", "-n", "19", sys.executable, "-c", READERS, url, TOKEN),
                            str(clients),
                            stdout=subprocess.PIPE,
                        )
                        assert readers.stdout is not None
                        await readers.stdout.readline()
                        await asyncio.sleep(0.5)
                    async with s.get(daemon.base + "/metrics") as r:
                        before = await r.text()
                    started = time.perf_counter()
                    latencies = []
                    motion = daemon.base + "/api/v1/sensors/hallway_motion"
                    for _ in range(N):
                        t0 = time.perf_counter()
                        async with s.post(motion, json={"value": "on"}) as r:
                            assert r.status == 200
                        latencies.append((await asyncio.wait_for(arrived.get(), 10) - t0) * 1000)
                        async with s.post(motion, json={"value": "off"}) as r:
                            assert r.status == 200
                    freezer = daemon.base + "/api/v1/sensors/freezer"
                    sem = asyncio.Semaphore(8)

                    async def inject(v: int) -> None:
                        async with sem, s.post(freezer, json={"value": v}) as r:
                            assert r.status == 200

                    t0, cpu0 = time.perf_counter(), cpu_seconds(pid)
                    await asyncio.gather(*(inject(value + i) for i in range(BURST)))
                    value += BURST
                    for _ in range(BURST):
                        last = await asyncio.wait_for(arrived.get(), 60)
                    burst = BURST / (last - t0)
                    cpu = (cpu_seconds(pid) - cpu0) / BURST * 1000
                    await asyncio.sleep(6)  # one history commit at least
                    took = time.perf_counter() - started
                    async with s.get(daemon.base + "/metrics") as r:
                        after = await r.text()
                    seen = ""
                    if readers is not None:
                        readers.send_signal(signal.SIGTERM)
                        out, _ = await asyncio.wait_for(readers.communicate(), 10)
                        seen = out.decode().strip()
                    commits = metric(after, "gateway_history_commits_total") - metric(
                        before, "gateway_history_commits_total"
                    )
                    rows = metric(after, "gateway_history_rows_written_total") - metric(
                        before, "gateway_history_rows_written_total"
                    )
                    return {
                        "clients": clients,
                        "p50": pct(latencies, 0.5),
                        "p99": pct(latencies, 0.99),
                        "burst": burst,
                        "cpu": cpu,
                        "rss": rss_kib(pid) / 1024,
                        "commits": commits / took,
                        "rows": rows / took,
                        "dropped": metric(after, "gateway_event_stream_dropped_total"),
                        "seen": seen,  # type: ignore[dict-item]
                    }

                await phase(0)  # a warm-up, not counted
                for clients in (CLIENTS, 0, CLIENTS, 0):
                    results.append(await phase(clients))
        finally:
            if daemon.proc is not None:
                daemon.proc.terminate()
                daemon.wait(15)
    await runner.cleanup()

    print(f"live event stream: {N} injections, bursts of {BURST} readings (each a webhook)")
    print(
        "  clients  p50 ms  p99 ms  burst/s  CPU ms/event  RSS MiB  history commits/s  rows/s"
        "  dropped"
    )
    for r in results:
        print(
            f"  {r['clients']:>7}  {r['p50']:6.2f}  {r['p99']:6.2f}  {r['burst']:7.0f}"
            f"  {r['cpu']:12.2f}"
            f"  {r['rss']:7.1f}  {r['commits']:17.2f}  {r['rows']:6.1f}  {r['dropped']:7.0f}"
            + (f"  (events per client: min/max {r['seen']})" if r["seen"] else "")
        )

    def mean(key: str, clients: int) -> float:
        values = [float(r[key]) for r in results if r["clients"] == clients]
        return sum(values) / len(values)

    ratios = {k: mean(k, CLIENTS) / mean(k, 0) for k in ("p50", "p99", "burst", "cpu")}
    print(
        f"  with {CLIENTS} clients vs none (means of two phases each): p50 {ratios['p50']:.2f}x,"
        f" p99 {ratios['p99']:.2f}x, burst {ratios['burst']:.2f}x,"
        f" CPU/event {ratios['cpu']:.2f}x, RSS {mean('rss', CLIENTS) - mean('rss', 0):+.1f} MiB"
    )


if __name__ == "__main__":
    asyncio.run(main())
