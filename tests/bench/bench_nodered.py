"""The gateway beside Node-RED on the same work, on this machine.

Issue 13's targets are set against Node-RED ("three times its throughput",
"half its CPU per message"), measured side by side on one machine. This
runs that comparison here: Node-RED 4.1.15 (installed with npm into
``BENCH_NODERED_DIR``, default ``~/.cache/edge-gateway-bench``, on first
use) with a flow of an ``mqtt in`` node (QoS 1, ``bench/#``, parsed JSON),
a function node shaping the same webhook body and an ``http request`` node
POSTing it (Node-RED's defaults: no keep-alive, nothing kept), against the
gateway with bench_e2e's config, the same publisher, broker and receiver
(tests/bench/sink.py), in alternating rounds. Printed for each: 200 msg/s
latency and CPU per message, the burst's delivered/s, its lowest half
second after the first second, and peak RSS. Asserts nothing about speed.

    python tests/bench/bench_nodered.py               # 2 rounds: 20 s at 200/s, 20,000 burst
    BENCH_SMOKE=1 python tests/bench/bench_nodered.py  # 1 round: 3 s, 2,000 (CI)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_e2e import (
    BURST,
    RATE,
    SMOKE,
    Measured,
    Publisher,
    Sink,
    burst,
    steady,
    world,
)
from tests.conftest import free_port

VERSION = "4.1.15"
ROUNDS = 1 if SMOKE else 2
HOME = Path(os.environ.get("BENCH_NODERED_DIR", Path.home() / ".cache" / "edge-gateway-bench"))

SHAPE = """
const p = msg.payload;
const data = {seq: p.seq, sent_ns: p.sent_ns, value: p.value};
msg.payload = JSON.stringify({type: "bench.msg", data: data});
msg.headers = {"content-type": "application/json", "webhook-id": "n" + p.seq};
return msg;
"""


def installed() -> Path:
    """Node-RED's red.js, installed with npm the first time."""
    red = HOME / f"node-red-{VERSION}" / "node_modules" / "node-red" / "red.js"
    if not red.exists():
        if shutil.which("npm") is None:
            raise SystemExit("bench_nodered needs node and npm (apt install nodejs npm)")
        red.parents[2].mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"node-red@{VERSION}",
            ],
            cwd=red.parents[2],
            check=True,
        )
    return red


def flow(broker: int, sink: str) -> list[dict[str, Any]]:
    return [
        {"id": "bench", "type": "tab", "label": "bench"},
        {
            "id": "broker",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": str(broker),
            "clientid": "bench-nodered",
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
            "autoConnect": True,
        },
        {
            "id": "in",
            "type": "mqtt in",
            "z": "bench",
            "topic": "bench/#",
            "qos": "1",
            "datatype": "json",
            "broker": "broker",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "wires": [["shape"]],
        },
        {
            "id": "shape",
            "type": "function",
            "z": "bench",
            "func": SHAPE,
            "outputs": 1,
            "wires": [["post"]],
        },
        {
            "id": "post",
            "type": "http request",
            "z": "bench",
            "method": "POST",
            "ret": "txt",
            "paytoqs": "ignore",
            "url": f"{sink}/hook",
            "persist": False,
            "senderr": False,
            "headers": [],
            "wires": [[]],
        },
    ]


class NodeRed(Measured):
    """Node-RED as the process under test (the node process itself, for /proc)."""

    def __init__(self, tmp: Path, broker: int, sink: Sink, publisher: Publisher) -> None:
        self.name = "node-red"
        self.daemon = None
        user = tmp / "node-red"
        user.mkdir(exist_ok=True)
        (user / "flows.json").write_text(json.dumps(flow(broker, sink.url)))
        (user / "settings.js").write_text(
            "module.exports = {flowFile: 'flows.json', uiHost: '127.0.0.1',"
            " logging: {console: {level: 'warn'}}};\n"
        )
        port = str(free_port())
        command = ["node", str(installed()), "-u", str(user), "-p", port, "flows.json"]
        self.baseline = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60  # subscribed when a message published now arrives
        while time.monotonic() < deadline and sink.get("/stats")["seqs"] == 0:
            publisher.publish(1, None)
            time.sleep(0.5)
        if sink.get("/stats")["seqs"] == 0:
            self.stop()
            raise RuntimeError("Node-RED did not forward a message within 60 s")


def forget_session(broker: int, client_id: str) -> None:
    """End the gateway's persistent session on the broker: else it queues the next
    contender's messages for the gateway's next round, which starts with a backlog."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect("127.0.0.1", broker)
    for _ in range(50):
        client.loop(0.1)
        if client.is_connected():
            break
    client.disconnect()


def settle(port: int, limit: float = 90.0) -> None:
    """Wait until the sockets Node-RED's burst left to the receiver (a connection a
    request, each in TIME_WAIT for a minute) are gone, so they do not slow the next
    contender's connects."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and _lingering(port) > 100:
        time.sleep(1.0)


def _lingering(port: int) -> int:
    """TCP sockets to or from ``port`` on 127.0.0.1 (/proc/net/tcp), any state."""
    needle = f":{port:04X} "
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if needle in line)


def main() -> None:
    red = installed()
    version = subprocess.run(
        [
            "node",
            "-e",
            f"console.log(require({json.dumps(str(red.parent / 'package.json'))}).version)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    results: dict[str, list[dict[str, Any]]] = {"gateway": [], "node-red": []}
    with world() as (tmp, broker, sink, pub):
        for round_ in range(ROUNDS):
            if round_:
                settle(sink.port)
            for who in ("gateway", "node-red"):
                sink.get("/reset")
                if who == "gateway":
                    (tmp / f"gateway-{round_}").mkdir()
                    m = Measured(who, tmp / f"gateway-{round_}", broker.port, sink)
                else:
                    m = NodeRed(tmp, broker.port, sink, pub)
                try:
                    pub.publish(200, RATE)  # warm up
                    sink.wait_for(200, 30)
                    result = steady(m, pub, sink, perf=False)
                    result["burst"] = burst(m, pub, sink)
                    results[who].append(result)
                finally:
                    m.stop()
                    if who == "gateway":
                        forget_session(broker.port, "bench-gw")
    report(results, version)


def report(results: dict[str, list[dict[str, Any]]], version: str) -> None:
    g, n = results["gateway"], results["node-red"]

    def each(runs: list[dict[str, Any]], key: str, fmt: str, phase: str | None) -> str:
        return ", ".join(format((r[phase] if phase else r)[key], fmt) for r in runs)

    def ratio(key: str, phase: str | None) -> str:
        def median(runs: list[dict[str, Any]]) -> float:
            return float(statistics.median((r[phase] if phase else r)[key] for r in runs))

        return f"{median(g) / median(n):.2f}x" if median(n) else ""

    print(f"MQTT QoS 1 -> receiver: the gateway and Node-RED {version}, {len(g)} round(s) each")
    print("  each round's figure, gateway | Node-RED; the ratio of the medians")
    print(f"(a) {RATE} msg/s")
    for label, key, fmt in (
        ("latency p50 (ms)", "p50", ".2f"),
        ("latency p99 (ms)", "p99", ".2f"),
        ("CPU per message (ms)", "cpu_ms", ".2f"),
    ):
        gs, ns = each(g, key, fmt, None), each(n, key, fmt, None)
        print(f"  {label:28} {gs:>16} | {ns:<16} {ratio(key, None)}")
    print(f"(b) burst of {BURST:,} QoS 1 messages")
    for label, key, fmt in (
        ("delivered/s", "rate", ",.0f"),
        ("lowest 0.5 s after 1 s (/s)", "lowest", ",.0f"),
        ("CPU per message (ms)", "cpu_ms", ".2f"),
        ("peak RSS (MiB)", "rss", ".0f"),
        ("lost", "lost", "d"),
    ):
        gs, ns = each(g, key, fmt, "burst"), each(n, key, fmt, "burst")
        shown = ratio(key, "burst") if key not in ("lost", "lowest") else ""
        print(f"  {label:28} {gs:>16} | {ns:<16} {shown}")
    print(
        f"  lost at 200 msg/s: gateway {[r['lost'] for r in g]}, Node-RED {[r['lost'] for r in n]}"
    )


if __name__ == "__main__":
    main()
