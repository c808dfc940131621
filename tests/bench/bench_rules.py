"""Rule engine throughput and config load time.

Figures printed:
- readings/s through the pure engine with 1, 100 and 1,000 rules (every
  rule is evaluated for every reading; about one reading in ten fires rules);
- the same with webhook actions going into a real SQLite outbox (committed);
- the time to load and validate a config with 1,000 rules.
The baseline is the 1-rule case of the same run.

    python tests/bench/bench_rules.py
    BENCH_SMOKE=1 python tests/bench/bench_rules.py
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.config import load_config
from gateway.config.models import GatewayConfig
from gateway.outbox.store import OutboxStore
from gateway.rules.runtime import Runtime
from gateway.rules.timers import TimerTable
from gateway.testing import MemoryActuators, VirtualClock

SMOKE = bool(os.environ.get("BENCH_SMOKE"))
READINGS = 2_000 if SMOKE else 20_000
SENSORS = 10


def config_text(rules: int) -> str:
    lines = ["sensors:"]
    lines += [f"  s{i}: {{kind: virtual}}" for i in range(SENSORS)]
    lines += [
        "actuators:",
        "  light: {gpio: 27}",
        "webhooks:",
        '  hub: {url: "http://127.0.0.1:9/"}',
    ]
    lines += ["rules:"]
    for i in range(rules):
        lines += [
            f"  - id: r{i}",
            f"    when: {{sensor: s{i % SENSORS}, above: {50 + i % 40}}}",
            "    if: [{time: {after: '00:00', before: '23:59:59'}}]",
            "    then:",
            f"      - {{webhook: hub, event: bench.r{i}, data: {{v: '{{{{ event.value }}}}'}}}}",
            "      - {actuate: light, state: toggle}",
        ]
    return "\n".join(lines) + "\n"


def relays() -> MemoryActuators:
    return MemoryActuators({"light": False}, VirtualClock())


class Count:
    def __init__(self) -> None:
        self.n = 0

    def submit(self, endpoint: str, event: str, data: Any) -> str:
        self.n += 1
        return "msg"


def drive(runtime: Runtime) -> tuple[float, int]:
    """Readings alternate low/high, so every tenth or so crosses thresholds."""
    start = time.perf_counter()
    for n in range(READINGS):
        step = n // SENSORS
        value = 95.0 if step % 10 == 9 else float(step % 40)
        runtime.reading(f"s{n % SENSORS}", value, "bench")
    return time.perf_counter() - start, READINGS


def bench(config: GatewayConfig, sink: Any) -> float:
    runtime = Runtime(config, relays(), sink, TimerTable(None), time.time)
    elapsed, count = drive(runtime)
    return count / elapsed


async def with_outbox(config: GatewayConfig, tmp: Path) -> tuple[float, int]:
    store = OutboxStore(tmp / "outbox.db", max_rows=10_000_000, max_bytes=1 << 34)
    store.start()
    try:
        runtime = Runtime(config, relays(), store, TimerTable(None), time.time)
        start = time.perf_counter()
        drive(runtime)
        await store.flushed()
        elapsed = time.perf_counter() - start
        rows = await store.call(
            lambda db: db.execute("SELECT count(*) FROM messages").fetchone()[0]
        )
    finally:
        store.stop()
    return READINGS / elapsed, int(rows)


def main() -> None:
    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        print(f"rule engine benchmark ({'smoke' if SMOKE else 'full'} mode), {READINGS:,} readings")
        rates = {}
        for rules in (1, 100, 1000):
            path = tmp / f"rules{rules}.yaml"
            path.write_text(config_text(rules))
            started = time.perf_counter()
            loaded = load_config(path)
            load_s = time.perf_counter() - started
            sink = Count()
            rates[rules] = bench(loaded.config, sink)
            ratio = rates[rules] / rates[1]
            print(
                f"  {rules:>5} rules: {rates[rules]:>9,.0f} readings/s pure engine "
                f"({ratio:.2f}x the 1-rule rate), {sink.n:,} webhooks decided; "
                f"config loaded and validated in {load_s * 1000:.0f} ms"
            )
            (tmp / f"o{rules}").mkdir()
            outbox_rate, rows = asyncio.run(with_outbox(loaded.config, tmp / f"o{rules}"))
            print(
                f"               {outbox_rate:>9,.0f} readings/s with webhooks committed to "
                f"the outbox ({rows:,} rows)"
            )


if __name__ == "__main__":
    main()
