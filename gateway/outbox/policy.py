"""What follows one delivery attempt: a pure function, tested as a table.

No I/O, no clock, no randomness of its own: the worker passes in what
happened (:class:`Attempt`), what it knows of the endpoint and the uplink
(:class:`Health`), the time and a jitter draw, and carries out the
:class:`Verdict` (writes the outcome, updates the breaker, logs the notices).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gateway.config.models import WebhookEndpoint
from gateway.outbox.endpoints import (
    BREAKER_GROWTH,
    BREAKER_MAX_PROBE,
    BREAKER_THRESHOLD,
    THROTTLE_DELAY,
    THROTTLED,
)
from gateway.outbox.rows import Outcome, Row


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt as it happened."""

    status: int  # 0: no HTTP answer
    error: str | None = None
    response: str = ""
    retry_after: float | None = None
    connection_failed: bool = False  # refused, unreachable, DNS: it never got anywhere
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class Health:
    """What the worker knows beyond the row: the endpoint's breaker and the uplink."""

    failures: int = 0  # consecutive, before this attempt
    link_was_down: bool = False  # before this attempt
    link_down: bool = False  # after counting this attempt's connection result
    link_probe: float = 5.0
    breaker_probe: float = 5.0


class Notice(enum.Enum):
    """A change of state worth one log line."""

    LINK_BACK = "uplink is back"
    LINK_DOWN = "uplink looks down"
    CIRCUIT_CLOSED = "circuit closed"
    CIRCUIT_OPEN = "circuit open"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    failures: int  # consecutive failures after this attempt
    probe_at: float | None = None  # breaker open: when to probe next (None: unchanged)
    notices: tuple[Notice, ...] = field(default=())


def decide(
    endpoint: WebhookEndpoint,
    row: Row,
    attempt: Attempt,
    health: Health,
    now: float,
    duration: float = 0.0,
    jitter: float = 0.5,
) -> Verdict:
    """The outcome of ``attempt`` (``jitter`` is a draw in [0, 1))."""
    notices: list[Notice] = []
    if health.link_was_down and not health.link_down:
        notices.append(Notice.LINK_BACK)
    status, error = attempt.status, attempt.error
    if 200 <= status < 300:
        if health.failures >= BREAKER_THRESHOLD:
            notices.append(Notice.CIRCUIT_CLOSED)
        outcome = Outcome(row, now, duration, status, None, attempt.response, delivered=True)
        return Verdict(outcome, 0, None, tuple(notices))
    if status:
        error = f"HTTP {status}"
        if 300 <= status < 400:
            error += " (redirects are not followed)"
    if attempt.connection_failed and health.link_down:
        if not health.link_was_down:
            notices.append(Notice.LINK_DOWN)
        outcome = Outcome(
            row,
            now,
            duration,
            0,
            f"uplink down: {error}",
            "",
            delivered=False,
            next_try=now + health.link_probe,
            counts=False,
        )
        return Verdict(outcome, health.failures, None, tuple(notices))
    failures = health.failures + 1
    probe_at = None
    if failures >= BREAKER_THRESHOLD:
        delay = health.breaker_probe * BREAKER_GROWTH ** (failures - BREAKER_THRESHOLD)
        probe_at = now + min(delay, BREAKER_MAX_PROBE)
        if failures == BREAKER_THRESHOLD:
            notices.append(Notice.CIRCUIT_OPEN)
    if status == 410:
        outcome = Outcome(
            row,
            now,
            duration,
            status,
            "HTTP 410 Gone: endpoint disabled",
            attempt.response,
            delivered=False,
            park_endpoint=True,
        )
        return Verdict(outcome, failures, probe_at, tuple(notices))
    throttled = status in THROTTLED or attempt.timed_out
    next_try = next_attempt(endpoint, row, now, throttled, attempt.retry_after, jitter)
    outcome = Outcome(
        row,
        now,
        duration,
        status,
        error,
        attempt.response,
        delivered=False,
        next_try=next_try,
    )
    return Verdict(outcome, failures, probe_at, tuple(notices))


def next_attempt(
    endpoint: WebhookEndpoint,
    row: Row,
    now: float,
    throttled: bool,
    retry_after: float | None,
    jitter: float,
) -> float | None:
    """When to try again, or None when ``max_age`` is used up (a dead letter).

    The endpoint's ``retry`` schedule by attempt number, ±20% jitter; a
    ``Retry-After`` is honoured as a minimum, and a throttling answer (429,
    502-504) or a timeout waits at least ``THROTTLE_DELAY``."""
    schedule = endpoint.retry
    delay = schedule[min(row.attempts, len(schedule) - 1)] * (0.8 + 0.4 * jitter)
    if retry_after is not None:
        delay = max(delay, retry_after)
    elif throttled:
        delay = max(delay, THROTTLE_DELAY)
    first_try = row.first_try if row.first_try is not None else now
    if now + delay > first_try + endpoint.max_age:
        return None
    return now + delay
