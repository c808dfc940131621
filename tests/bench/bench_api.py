"""Authenticated ``POST /api/v1/actuators/{id}`` under load, beside a bare aiohttp server.

wrk (Debian package ``wrk``) drives 50 connections against the daemon (a
subprocess, simulated GPIO, bearer token checked, body validated, relay
switched, audit line logged), then against an aiohttp hello-world in the
same run; the ratio is the figure.

    python tests/bench/bench_api.py            # 10 s each
    BENCH_SMOKE=1 python tests/bench/bench_api.py   # 3 s each
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import TOKEN, Daemon, demo_like_config, edited, free_port

DURATION = "3s" if os.environ.get("BENCH_SMOKE") else "10s"
CONNECTIONS = 50

HELLO = """
from aiohttp import web
import sys
async def hello(request):
    await request.read()
    return web.json_response({"state": "on"})
app = web.Application()
app.router.add_post("/api/v1/actuators/hallway_light", hello)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

LUA = f"""
wrk.method = "POST"
wrk.body = '{{"state": "toggle"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
"""


def wrk(url: str, script: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION}", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rate, out
    return {
        "rps": float(rate.group(1)),
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        script = tmp / "post.lua"
        script.write_text(textwrap.dedent(LUA))
        port = free_port()
        config = demo_like_config(tmp, port, "http://127.0.0.1:9/")
        config.write_text(
            edited(
                config.read_text(),
                (
                    "  tokens:\n",
                    "  rate_limit: {requests: 100000000, per: 1s}\n"
                    "  max_in_flight: 1000\n  tokens:\n",
                ),
            )
        )
        daemon = Daemon(config, port, tmp / "daemon.log")
        daemon.start()
        try:
            asyncio.run(daemon.wait_ready())
            url = f"{daemon.base}/api/v1/actuators/hallway_light"
            ours = wrk(url, script)
        finally:
            if daemon.proc:
                daemon.proc.terminate()
                daemon.wait(10)
        hello_port = free_port()
        hello = subprocess.Popen([sys.executable, "-c", HELLO, str(hello_port)])
        try:
            time.sleep(1.5)
            base = wrk(f"http://127.0.0.1:{hello_port}/api/v1/actuators/hallway_light", script)
        finally:
            hello.terminate()
            hello.wait(10)
    print(f"POST /api/v1/actuators/hallway_light, wrk, {CONNECTIONS} connections, {DURATION}:")
    print(
        f"  gateway (token, validation, GPIO, audit log): {ours['rps']:,.0f} req/s, "
        f"p50 {ours['p50']:.2f} ms, p99 {ours['p99']:.2f} ms, {ours['errors']:.0f} non-2xx"
    )
    print(
        f"  bare aiohttp hello-world:                     {base['rps']:,.0f} req/s, "
        f"p50 {base['p50']:.2f} ms, p99 {base['p99']:.2f} ms"
    )
    print(f"  ratio: {ours['rps'] / base['rps']:.2f} of the bare server's throughput")


if __name__ == "__main__":
    main()
