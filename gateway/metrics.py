"""Prometheus text exposition for ``GET /metrics``, without a client library.

Counters and the latency histogram live in memory (they restart at zero
with the daemon, as Prometheus expects); queue figures are read from the
outbox database when scraped.
"""

from __future__ import annotations

import os
import resource
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.outbox.rows import Outcome

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


def outcome_label(outcome: Outcome) -> str:
    if outcome.delivered:
        return "delivered"
    if not outcome.counts:
        return "deferred"
    if outcome.park_endpoint:
        return "gone"
    if outcome.next_try is None:
        return "dead"
    if outcome.status == 0:
        return "network_error"
    return "http_error"


@dataclass
class Histogram:
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str) -> Iterable[str]:
        sep = "," if labels else ""
        for bound, n in zip(self.buckets, self.counts, strict=True):
            yield f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {n}'
        yield f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}'
        yield f"{name}_sum{{{labels}}} {self.total:.6f}"
        yield f"{name}_count{{{labels}}} {self.count}"


@dataclass
class DeliveryMetrics:
    """Attempts by endpoint and outcome; enqueue-to-delivery latency by endpoint."""

    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    latency: dict[str, Histogram] = field(default_factory=dict)
    listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    """Told of each webhook queued and each attempt's outcome (the event stream)."""

    def observe(self, endpoint: str, outcome: Outcome, now: float) -> None:
        label = outcome_label(outcome)
        self.attempts[(endpoint, label)] += 1
        if outcome.delivered:
            hist = self.latency.setdefault(endpoint, Histogram())
            hist.observe(max(now - outcome.row.created, 0.0))
        if self.listeners:
            said = {"id": outcome.row.id, "endpoint": endpoint, "outcome": label}
            self.tell(said | {"status": outcome.status, "error": outcome.error})

    def tell(self, what: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(what)


@dataclass
class Counts:
    """What the gateway counted, for the exposition."""

    rules: Mapping[str, int] = field(default_factory=dict)  # runs started, by rule
    suppressed: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (rule, reason)
    hooks: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (hook, outcome)
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # as in the status
    sensors: Mapping[str, Reading] = field(default_factory=dict)
    actuators: Mapping[str, bool | float] = field(default_factory=dict)  # state or level
    looking: Mapping[str, int] = field(default_factory=dict)  # history and event stream


@dataclass(frozen=True, slots=True)
class Reading:
    """A sensor as the exposition shows it."""

    value: bool | float | int | str | None  # None: no reading yet, or unavailable
    available: bool
    updated: float | None  # the last reading, seconds since the epoch


INPUT_COUNTERS = (
    ("messages", "gateway_input_messages_total", "MQTT messages received, by input."),
    ("lines", "gateway_input_lines_total", "Serial lines read, by input."),
    ("readings", "gateway_input_readings_total", "Readings of polled kernel sensors."),
    ("malformed", "gateway_input_malformed_total", "Messages or lines that could not be read."),
    ("bad_values", "gateway_input_bad_values_total", "Readings that were not a sensor's kind."),
    ("reconnects", "gateway_input_reconnects_total", "Connections lost and made again."),
)


def _process() -> list[str]:
    """The standard ``process_*`` metrics (as the Prometheus client libraries name
    them), from ``/proc/self`` on Linux; nothing elsewhere."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        with open("/proc/stat", "rb") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith(b"btime"))
        fds = len(os.listdir("/proc/self/fd"))
    except (OSError, StopIteration, ValueError, IndexError):
        return []
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    start = boot + int(fields[19]) / ticks
    soft_fds, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return [
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
        "# TYPE process_cpu_seconds_total counter",
        f"process_cpu_seconds_total {cpu:.2f}",
        "# HELP process_open_fds Number of open file descriptors.",
        "# TYPE process_open_fds gauge",
        f"process_open_fds {fds}",
        "# HELP process_max_fds Maximum number of open file descriptors.",
        "# TYPE process_max_fds gauge",
        f"process_max_fds {soft_fds}",
        "# HELP process_virtual_memory_bytes Virtual memory size in bytes.",
        "# TYPE process_virtual_memory_bytes gauge",
        f"process_virtual_memory_bytes {int(fields[20])}",
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes {int(fields[21]) * page}",
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds {start:.2f}",
    ]


def _counted(counts: Counts) -> list[str]:
    out = [
        "# HELP gateway_rule_runs_total Times each rule fired (its actions started).",
        "# TYPE gateway_rule_runs_total counter",
    ]
    for rule, n in sorted(counts.rules.items()):
        out.append(f'gateway_rule_runs_total{{rule="{_esc(rule)}"}} {n}')
    out += [
        "# HELP gateway_rule_suppressed_total Triggers that did not run their rule, by reason "
        "(condition, cooldown, running: mode single).",
        "# TYPE gateway_rule_suppressed_total counter",
    ]
    for (rule, reason), n in sorted(counts.suppressed.items()):
        out.append(f'gateway_rule_suppressed_total{{rule="{_esc(rule)}",reason="{reason}"}} {n}')
    out += [
        "# HELP gateway_hook_requests_total Inbound hook requests by hook and outcome "
        "(accepted, rejected: not verified, invalid: a body that is not what the hook takes).",
        "# TYPE gateway_hook_requests_total counter",
    ]
    for (hook, outcome), n in sorted(counts.hooks.items()):
        out.append(f'gateway_hook_requests_total{{hook="{_esc(hook)}",outcome="{outcome}"}} {n}')
    for key, name, text in INPUT_COUNTERS:
        having = {i: v[key] for i, v in counts.inputs.items() if isinstance(v.get(key), int)}
        if having:
            out += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
            out += [f'{name}{{input="{_esc(i)}"}} {n}' for i, n in sorted(having.items())]
    return out


def _devices(counts: Counts) -> list[str]:
    """Sensor values (numbers; on/off as 1/0), their freshness, and actuator states."""
    out = [
        "# HELP gateway_sensor_value A sensor's last reading (on/off sensors: 1/0).",
        "# TYPE gateway_sensor_value gauge",
    ]
    for name, r in sorted(counts.sensors.items()):
        if r.available and isinstance(r.value, bool | int | float):
            out.append(f'gateway_sensor_value{{sensor="{_esc(name)}"}} {float(r.value):g}')
    out += [
        "# HELP gateway_sensor_available Whether a sensor has a current reading (1) or is "
        "unavailable (0: its input is gone, or no reading within stale_after).",
        "# TYPE gateway_sensor_available gauge",
    ]
    for name, r in sorted(counts.sensors.items()):
        out.append(f'gateway_sensor_available{{sensor="{_esc(name)}"}} {int(r.available)}')
    out += [
        "# HELP gateway_sensor_last_updated_timestamp_seconds When a sensor last read.",
        "# TYPE gateway_sensor_last_updated_timestamp_seconds gauge",
    ]
    for name, r in sorted(counts.sensors.items()):
        if r.updated is not None:
            out.append(
                f'gateway_sensor_last_updated_timestamp_seconds{{sensor="{_esc(name)}"}} '
                f"{r.updated:.3f}"
            )
    out += [
        "# HELP gateway_actuator_state An actuator's state: 1 on, 0 off (pwm: its level).",
        "# TYPE gateway_actuator_state gauge",
    ]
    for name, state in sorted(counts.actuators.items()):
        out.append(f'gateway_actuator_state{{actuator="{_esc(name)}"}} {float(state):g}')
    return out


LOOKING = (
    ("outbox_commits", "counter", "Commits of outbox.db (new rows, delivery results, counters)."),
    ("outbox_fsyncs", "counter", "Commits of outbox.db that were fsynced: those with new rows."),
    ("history_commits", "counter", "Commits of history.db (readings, switches, traces)."),
    ("history_rows_written", "counter", "Rows written to history.db."),
    ("history_errors", "counter", "Commits of history.db that failed (left out)."),
    ("event_stream_clients", "gauge", "Clients of the live event stream now."),
    ("event_stream_events", "counter", "Events sent to the stream (once, whoever listens)."),
    ("event_stream_dropped", "counter", "Stream clients dropped for falling behind."),
)


def _looking(values: Mapping[str, int]) -> list[str]:
    out = []
    for key, kind, text in LOOKING:
        if key in values:
            name = f"gateway_{key}" + ("_total" if kind == "counter" else "")
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {values[key]}"]
    return out


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(
    info: Mapping[str, Any],
    outbox: Mapping[str, Any],
    delivery: DeliveryMetrics,
    counts: Counts,
) -> str:
    """The whole exposition: gateway info, outbox, deliveries, inputs, rules, hooks,
    and the process."""
    out = [
        "# HELP gateway_info Build and name of this gateway.",
        "# TYPE gateway_info gauge",
        f'gateway_info{{name="{_esc(info["name"])}",version="{_esc(info["version"])}"}} 1',
        "# HELP gateway_uptime_seconds Seconds since the daemon started.",
        "# TYPE gateway_uptime_seconds gauge",
        f"gateway_uptime_seconds {info['uptime']:.3f}",
        "# HELP gateway_outbox_pending Webhooks waiting to be delivered.",
        "# TYPE gateway_outbox_pending gauge",
    ]
    endpoints = outbox.get("endpoints", {})
    for name, entry in sorted(endpoints.items()):
        out.append(f'gateway_outbox_pending{{endpoint="{_esc(name)}"}} {entry.get("pending", 0)}')
    out += [
        "# HELP gateway_outbox_dead Dead letters (gave up after max_age), kept for replay.",
        "# TYPE gateway_outbox_dead gauge",
    ]
    for name, entry in sorted(endpoints.items()):
        out.append(f'gateway_outbox_dead{{endpoint="{_esc(name)}"}} {entry.get("dead", 0)}')
    out += [
        "# HELP gateway_outbox_oldest_age_seconds Age of the oldest undelivered webhook.",
        "# TYPE gateway_outbox_oldest_age_seconds gauge",
        f"gateway_outbox_oldest_age_seconds {outbox.get('oldest_age') or 0:.3f}",
        "# HELP gateway_outbox_dropped_total Webhooks dropped because the outbox was full.",
        "# TYPE gateway_outbox_dropped_total counter",
    ]
    counters = outbox.get("counters", {})
    for policy in ("dropped_oldest", "dropped_new"):
        out.append(f'gateway_outbox_dropped_total{{policy="{policy}"}} {counters.get(policy, 0)}')
    out += [
        "# HELP gateway_webhook_attempts_total Delivery attempts by endpoint and outcome.",
        "# TYPE gateway_webhook_attempts_total counter",
    ]
    for (endpoint, label), n in sorted(delivery.attempts.items()):
        out.append(
            f'gateway_webhook_attempts_total{{endpoint="{_esc(endpoint)}",outcome="{label}"}} {n}'
        )
    out += [
        "# HELP gateway_webhook_delivery_seconds Time from enqueue to a 2xx answer.",
        "# TYPE gateway_webhook_delivery_seconds histogram",
    ]
    for endpoint, hist in sorted(delivery.latency.items()):
        out.extend(hist.lines("gateway_webhook_delivery_seconds", f'endpoint="{_esc(endpoint)}"'))
    out += [
        "# HELP gateway_input_connected Whether an input connection is up (1) or down (0).",
        "# TYPE gateway_input_connected gauge",
    ]
    for name, state in sorted(counts.inputs.items()):
        up = 1 if state.get("state") == "connected" else 0
        out.append(f'gateway_input_connected{{input="{_esc(name)}"}} {up}')
    out += _devices(counts)
    out += _looking(counts.looking)
    out += _counted(counts)
    out += _process()
    return "\n".join(out) + "\n"
