"""Prometheus text exposition for ``GET /metrics``, without a client library.

Counters and the latency histogram live in memory (they restart at zero
with the daemon, as Prometheus expects); queue figures are read from the
outbox database when scraped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
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

    def observe(self, endpoint: str, outcome: Outcome, now: float) -> None:
        self.attempts[(endpoint, outcome_label(outcome))] += 1
        if outcome.delivered:
            hist = self.latency.setdefault(endpoint, Histogram())
            hist.observe(max(now - outcome.row.created, 0.0))


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(
    info: Mapping[str, Any],
    outbox: Mapping[str, Any],
    delivery: DeliveryMetrics,
    connections: Mapping[str, str],
) -> str:
    """The whole exposition: gateway info, outbox, deliveries, connections."""
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
    for name, state in sorted(connections.items()):
        up = 1 if state == "connected" else 0
        out.append(f'gateway_input_connected{{input="{_esc(name)}"}} {up}')
    return "\n".join(out) + "\n"
