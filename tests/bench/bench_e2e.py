"""End to end: MQTT -> rule -> outbox -> receiver, through a real mosquitto.

QoS 1 messages on ``bench/N`` (``seq``, ``sent_ns``, ``value``) go through a
rule that forwards them as a signed webhook to a receiver in its own process
(tests/bench/sink.py). The baseline, in the same run, is a bare paho
subscriber that POSTs each message with aiohttp and keeps nothing. For each
it prints, from outside the process (/proc/PID/stat, /proc/PID/io and
``perf stat`` on the fsync system calls):

- 200 msg/s: latency p50/p99 from publish to arrival, CPU per message,
  bytes written and fsyncs per message;
- a QoS 1 burst: delivered/s at the receiver, delivered every 0.5 s (a stall
  shows as a dip), peak RSS, bytes written per message, lost;
- the gateway only: kill -9 in the middle of a stream at 100 and 1,000 msg/s
  (a persistent session), messages lost.

Asserts nothing about speed.

    python tests/bench/bench_e2e.py                # 20 s at 200/s, 20,000 burst, 5 kills each
    BENCH_SMOKE=1 python tests/bench/bench_e2e.py  # 3 s, 2,000, 1 kill each (CI)
    BENCH_PROFILE=DIR python tests/bench/bench_e2e.py  # and py-spy's stacks of each phase in DIR
    BENCH_COMMIT_WINDOW=20ms python tests/bench/bench_e2e.py  # the gateway with a commit window
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import SECRET, TOKEN, Daemon, Mosquitto, free_port, write_config

SMOKE = bool(os.environ.get("BENCH_SMOKE"))
RATE = 200
STEADY_SECONDS = 3 if SMOKE else 20
BURST = 2_000 if SMOKE else 20_000
KILL_ROUNDS = 1 if SMOKE else 5
KILL_MESSAGES = {100: 300 if SMOKE else 1_000, 1000: 1_000 if SMOKE else 3_000}
TICK = 0.5
WINDOW = os.environ.get("BENCH_COMMIT_WINDOW", "")  # outbox.commit_window of the gateway
BEGAN = time.monotonic()


class Profile:
    """py-spy recording stacks (collapsed, a file a phase) when BENCH_PROFILE is set."""

    def __init__(self, pid: int, phase: str) -> None:
        directory = os.environ.get("BENCH_PROFILE")
        self.proc = None
        if directory:
            out = Path(directory) / f"{phase}.txt"
            command = ["py-spy", "record", "-p", str(pid), "-r", "250", "-f", "raw", "-o", str(out)]
            self.proc = subprocess.Popen([*command, "--threads", "--nonblocking"])
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)


def note(text: str) -> None:
    print(f"[{time.monotonic() - BEGAN:6.1f} s] {text}", file=sys.stderr, flush=True)


def proc_field(pid: int, name: str, key: str) -> int:
    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Fsyncs:
    """fsync and fdatasync calls of a process (all its threads), counted by ``perf stat``."""

    EVENTS = "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync"

    @staticmethod
    def available() -> bool:
        try:
            out = subprocess.run(
                ["perf", "stat", "-x,", "-e", Fsyncs.EVENTS, "true"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.returncode == 0 and "sys_enter_fsync" in out.stderr

    def __init__(self, pid: int) -> None:
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x,", "-e", self.EVENTS, "-p", str(pid)],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.3)  # attached

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=10)
        return sum(int(line.split(",")[0]) for line in err.splitlines() if "sys_enter" in line)


class Sink:
    """The receiver process (tests/bench/sink.py)."""

    def __init__(self) -> None:
        self.port = free_port()
        script = Path(__file__).with_name("sink.py")
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port)])
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(200):
            try:
                self.get("/stats")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sink did not start")

    def get(self, path: str) -> Any:
        method = "POST" if path == "/reset" else "GET"
        request = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def wait_for(self, count: int, timeout: float) -> None:
        """Until ``count`` messages (distinct seqs, not webhooks: see sink.py) arrived."""
        deadline = time.monotonic() + timeout
        while self.get("/stats")["seqs"] < count and time.monotonic() < deadline:
            time.sleep(0.1)

    def arrivals(self) -> dict[int, tuple[float, int]]:
        """seq -> (arrival, sent_ns) of the first arrival of each."""
        out: dict[int, tuple[float, int]] = {}
        for _id, arrived, seq, sent_ns in self.get("/dump"):
            if seq is not None and seq not in out:
                out[seq] = (arrived, sent_ns)
        return out


class Publisher:
    """A paho client publishing QoS 1 ``{"seq", "sent_ns", "value"}`` on ``bench/N``."""

    def __init__(self, broker: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
        self.client.max_inflight_messages_set(200)
        self.client.connect("127.0.0.1", broker)
        self.client.loop_start()
        self.seq = 0
        self.done = 0.0  # when the last publish was acknowledged

    def publish(
        self, count: int, rate: float | None, during: Callable[[int], None] | None = None
    ) -> range:
        """``count`` messages at ``rate`` per second (None: as fast as paho takes them);
        ``during(i)`` before the i-th; the seqs sent."""
        first = self.seq
        start = time.perf_counter()
        info = None
        for i in range(count):
            if during is not None:
                during(i)
            if rate is not None and (delay := start + i / rate - time.perf_counter()) > 0:
                time.sleep(delay)
            body = json.dumps({"seq": self.seq, "sent_ns": time.time_ns(), "value": i % 100})
            info = self.client.publish(f"bench/{self.seq % 4}", body, qos=1)
            self.seq += 1
        if info is not None:
            info.wait_for_publish(60)
        self.done = time.time()
        return range(first, self.seq)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def gateway_config(tmp: Path, port: int, broker: int, sink: str) -> Path:
    return write_config(
        tmp,
        f"""
        gateway: {{name: bench-e2e, state_dir: {tmp / "state"}, simulate: true}}
        mqtt: {{host: 127.0.0.1, port: {broker}, client_id: bench-gw}}
        {f"outbox: {{commit_window: {WINDOW}}}" if WINDOW else ""}
        webhooks:
          sink: {{url: {sink}/hook, secret: {SECRET}, retry: [50ms], concurrency: 8}}
        server:
          listen: 127.0.0.1:{port}
          tokens: {{bench: {{token: {TOKEN}}}}}
        rules:
          - id: forward
            when: {{mqtt: "bench/#"}}
            mode: parallel
            then:
              - webhook: sink
                event: bench.msg
                data:
                  seq: "{{{{ event.payload.seq }}}}"
                  sent_ns: "{{{{ event.payload.sent_ns }}}}"
                  value: "{{{{ event.payload.value }}}}"
        """,
    )


def baseline(broker: int, url: str) -> None:
    """The bare subscriber: paho's thread hands each message to aiohttp, nothing kept."""
    import aiohttp
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    loop = asyncio.new_event_loop()
    session: aiohttp.ClientSession | None = None

    async def post(payload: bytes) -> None:
        data = json.loads(payload)
        assert session is not None
        headers = {"webhook-id": f"b{data['seq']}", "content-type": "application/json"}
        body = json.dumps({"type": "bench.msg", "data": data}).encode()
        async with session.post(url, data=body, headers=headers) as r:
            await r.read()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        loop.call_soon_threadsafe(loop.create_task, post(msg.payload))

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe("bench/#", qos=1)

    def on_subscribe(*args: Any) -> None:
        print("ready", flush=True)

    async def serve() -> None:
        nonlocal session
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8))
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-baseline", clean_session=False
        )
        client.on_message, client.on_connect = on_message, on_connect
        client.on_subscribe = on_subscribe
        client.connect("127.0.0.1", broker)
        client.loop_start()
        await asyncio.Event().wait()

    loop.run_until_complete(serve())


class Measured:
    """The process under test: the gateway daemon, or the baseline subscriber."""

    def __init__(self, name: str, tmp: Path, broker: int, sink: Sink) -> None:
        self.name = name
        self.daemon: Daemon | None = None
        self.baseline: subprocess.Popen[bytes] | None = None
        if name == "gateway":
            port = free_port()
            self.daemon = Daemon(gateway_config(tmp, port, broker, sink.url), port, tmp / "d.log")
            self.daemon.start()
            asyncio.run(self.daemon.wait_ready())
            time.sleep(1.0)  # subscribed
        else:
            self.baseline = subprocess.Popen(
                [sys.executable, __file__, "baseline", str(broker), sink.url + "/hook"],
                stdout=subprocess.PIPE,
            )
            assert self.baseline.stdout is not None
            self.baseline.stdout.readline()  # "ready"

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The process now (the daemon's changes when it is killed and started again)."""
        proc = self.daemon.proc if self.daemon is not None else self.baseline
        assert proc is not None
        return proc

    def snapshot(self) -> tuple[float, int]:
        return cpu_seconds(self.proc.pid), proc_field(self.proc.pid, "io", "write_bytes")

    def commits(self) -> int:
        """The outbox's commits so far (its metric; the baseline keeps nothing: 0)."""
        if self.daemon is None:
            return 0
        request = urllib.request.Request(
            self.daemon.base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            text = r.read().decode()
        return next(
            int(line.split()[1])
            for line in text.splitlines()
            if line.startswith("gateway_outbox_commits_total ")
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def steady(m: Measured, pub: Publisher, sink: Sink, perf: bool) -> dict[str, Any]:
    count = RATE * STEADY_SECONDS
    sink.get("/reset")
    fsyncs = Fsyncs(m.proc.pid) if perf else None
    cpu0, written0 = m.snapshot()
    seqs = pub.publish(count, RATE)
    sink.wait_for(count, 60)
    cpu1, written1 = m.snapshot()
    syncs = fsyncs.stop() if fsyncs else None
    got = sink.arrivals()
    lat = [(got[s][0] - got[s][1] / 1e9) * 1000 for s in seqs if s in got]
    return {
        "p50": pct(lat, 0.5),
        "p99": pct(lat, 0.99),
        "cpu_ms": (cpu1 - cpu0) * 1000 / count,
        "written": (written1 - written0) / count,
        "fsyncs": None if syncs is None else syncs / count,
        "lost": count - len(got.keys() & set(seqs)),
    }


def burst(m: Measured, pub: Publisher, sink: Sink) -> dict[str, Any]:
    sink.get("/reset")
    cpu0, written0 = m.snapshot()
    commits0 = m.commits()
    start = time.time()
    done = threading.Event()
    seqs: list[range] = []

    def publish() -> None:
        seqs.append(pub.publish(BURST, None))
        done.set()

    threading.Thread(target=publish).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sink.get("/stats")["seqs"] < BURST:
        time.sleep(0.25)
    done.wait(60)
    cpu1, written1 = m.snapshot()
    commits = m.commits() - commits0
    got = sink.arrivals()
    arrivals = sorted(got[s][0] for s in seqs[0] if s in got)
    series = [0] * (int((arrivals[-1] - start) / TICK) + 1)
    for t in arrivals:
        series[int((t - start) / TICK)] += 1
    overall = len(arrivals) / (arrivals[-1] - start)
    after_first = [n / TICK for n in series[int(1 / TICK) : -1]] or [overall]
    return {
        "rate": overall,
        "series": [round(n / TICK) for n in series],
        "lowest": min(after_first),
        "rss": proc_field(m.proc.pid, "status", "VmHWM") / 1024,
        "cpu_ms": (cpu1 - cpu0) * 1000 / BURST,
        "written": (written1 - written0) / BURST,
        "commits": commits / BURST,
        "lost": BURST - len(arrivals),
    }


def kills(m: Measured, pub: Publisher, sink: Sink) -> list[tuple[int, int, int, int]]:
    """(rate, messages, lost, arrived twice) for each round: kill -9 half way, start
    again at once (at least once: what was committed but not acknowledged comes again)."""
    assert m.daemon is not None
    daemon = m.daemon
    rounds = []
    for rate, count in KILL_MESSAGES.items():
        for _ in range(KILL_ROUNDS):
            sink.get("/reset")

            def kill_half_way(i: int, count: int = count) -> None:
                if i == count // 2:
                    daemon.kill()
                    daemon.start()

            seqs = pub.publish(count, rate, kill_half_way)
            asyncio.run(daemon.wait_ready())
            sink.wait_for(count, 60)
            got = sink.arrivals()
            twice = sink.get("/stats")["received"] - len(got)
            rounds.append((rate, count, count - len(got.keys() & set(seqs)), twice))
    return rounds


@contextmanager
def world() -> Iterator[tuple[Path, Mosquitto, Sink, Publisher]]:
    """A temporary directory, a mosquitto, the receiver and the publisher, for one run."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        # mosquitto keeps at most 1,000 messages queued for a client by default: a burst needs more
        broker = Mosquitto(tmp / "broker", "max_queued_messages 1000000\n")
        broker.start()
        sink = Sink()
        pub = Publisher(broker.port)
        try:
            yield tmp, broker, sink, pub
        finally:
            pub.close()
            sink.proc.terminate()
            broker.stop()


def main() -> None:
    perf = Fsyncs.available()
    results: dict[str, dict[str, Any]] = {}
    kill_rounds: list[tuple[int, int, int, int]] = []
    with world() as (tmp, broker, sink, pub):
        for who in ("baseline", "gateway"):
            m = Measured(who, tmp, broker.port, sink)
            try:
                pub.publish(200, RATE)  # warm up
                sink.wait_for(200, 30)
                note(f"{who}: {RATE} msg/s")
                profile = Profile(m.proc.pid, f"{who}-steady")
                results[who] = steady(m, pub, sink, perf)
                profile.stop()
                note(f"{who}: burst of {BURST}")
                profile = Profile(m.proc.pid, f"{who}-burst")
                results[who]["burst"] = burst(m, pub, sink)
                profile.stop()
                if who == "gateway":
                    note("gateway: kill -9")
                    kill_rounds = kills(m, pub, sink)
            finally:
                m.stop()
    report(results, kill_rounds, perf)


def report(
    results: dict[str, dict[str, Any]], kill_rounds: list[tuple[int, int, int, int]], perf: bool
) -> None:
    g, b = results["gateway"], results["baseline"]
    print(
        "MQTT QoS 1 -> rule -> outbox -> receiver through mosquitto; baseline: bare paho + aiohttp"
    )
    print(f"(a) {RATE} msg/s for {STEADY_SECONDS} s         gateway    baseline   ratio")
    print(f"  (the gateway's outbox.commit_window: {WINDOW or 'the default'})")
    rows = [
        ("latency p50 (ms)", "p50"),
        ("latency p99 (ms)", "p99"),
        ("CPU per message (ms)", "cpu_ms"),
        ("bytes written per message", "written"),
    ]
    if perf:
        rows.append(("fsyncs per message", "fsyncs"))
    for label, key in rows:
        ratio = g[key] / b[key] if b[key] else float("inf")
        print(f"  {label:28} {g[key]:9.2f}  {b[key]:9.2f}  {ratio:6.2f}x")
    if not perf:
        print("  fsyncs: not counted (perf cannot trace system calls on this machine)")
    print(f"  lost: gateway {g['lost']}, baseline {b['lost']}")
    gb, bb = g["burst"], b["burst"]
    print(f"(b) burst of {BURST:,} QoS 1 messages, concurrency 8")
    print(
        f"  delivered/s                  {gb['rate']:9.0f}  {bb['rate']:9.0f}"
        f"  {gb['rate'] / bb['rate']:6.2f}x"
    )
    print(f"  CPU per message (ms)         {gb['cpu_ms']:9.2f}  {bb['cpu_ms']:9.2f}")
    print(f"  bytes written per message    {gb['written']:9.0f}  {bb['written']:9.0f}")
    print(f"  outbox commits per message   {gb['commits']:9.3f}  {bb['commits']:9.3f}")
    print(f"  peak RSS (MiB)               {gb['rss']:9.1f}  {bb['rss']:9.1f}")
    print(f"  lost                         {gb['lost']:9d}  {bb['lost']:9d}")
    for who, r in (("gateway", gb), ("baseline", bb)):
        print(
            f"  {who} delivered/s every {TICK} s: {r['series']}"
            f" (lowest after the first second: {r['lowest']:.0f}/s,"
            f" {r['lowest'] / r['rate']:.2f} of the overall rate)"
        )
    print("(c) kill -9 half way through a stream, persistent session (gateway)")
    for rate in KILL_MESSAGES:
        lost = [lost for r, _, lost, _ in kill_rounds if r == rate]
        twice = [twice for r, _, _, twice in kill_rounds if r == rate]
        count = KILL_MESSAGES[rate]
        print(
            f"  {rate:5d} msg/s, {count} messages, {len(lost)} kill(s): lost {lost},"
            f" arrived twice {twice}"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["baseline"]:
        baseline(int(sys.argv[2]), sys.argv[3])
    else:
        main()
