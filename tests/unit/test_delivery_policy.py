"""The delivery policy as a table: every answer, timeout, offline and breaker case."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gateway.config.models import WebhookEndpoint
from gateway.outbox.endpoints import BREAKER_THRESHOLD, THROTTLE_DELAY
from gateway.outbox.policy import Attempt, Health, Notice, decide
from gateway.outbox.rows import Row

NOW = 1_000_000.0
ENDPOINT = WebhookEndpoint(url="http://127.0.0.1:9/", retry=(10.0, 60.0), max_age=3600.0)


def row(attempts: int = 0, first_try: float | None = None) -> Row:
    return Row(1, "msg_1", "hub", "motion", b"{}", NOW - 5, first_try, attempts)


HEALTHY = Health()
FRESH = row()


@dataclass(frozen=True)
class Case:
    name: str
    attempt: Attempt
    health: Health = HEALTHY
    row: Row = FRESH
    delivered: bool = False
    next_try: float | None = None  # seconds from NOW; None: dead (or delivered)
    counts: bool = True
    parked: bool = False
    failures: int = 1
    probe_in: float | None = None
    notices: tuple[Notice, ...] = ()
    error: str | None = None


CASES = [
    Case("200 delivers", Attempt(200), delivered=True, failures=0),
    Case("204 delivers", Attempt(204), delivered=True, failures=0),
    Case(
        "2xx closes an open breaker",
        Attempt(200),
        Health(failures=BREAKER_THRESHOLD + 2),
        delivered=True,
        failures=0,
        notices=(Notice.CIRCUIT_CLOSED,),
    ),
    Case("500 retries on the schedule", Attempt(500), next_try=10.0, error="HTTP 500"),
    Case("400 retries too (the receiver may be fixed)", Attempt(400), next_try=10.0),
    Case("second failure uses the next delay", Attempt(500), row=row(1, NOW - 10), next_try=60.0),
    Case("past the schedule the last delay repeats", Attempt(500), row=row(7, NOW), next_try=60.0),
    Case(
        "301 is not followed",
        Attempt(301),
        next_try=10.0,
        error="HTTP 301 (redirects are not followed)",
    ),
    Case("429 waits at least the throttle delay", Attempt(429), next_try=THROTTLE_DELAY),
    Case("503 waits at least the throttle delay", Attempt(503), next_try=THROTTLE_DELAY),
    Case(
        "Retry-After beats the throttle delay",
        Attempt(503, retry_after=600.0),
        next_try=600.0,
    ),
    Case("Retry-After shorter than the schedule", Attempt(503, retry_after=1.0), next_try=10.0),
    Case(
        "a timeout is throttled",
        Attempt(0, error="timed out", timed_out=True),
        next_try=THROTTLE_DELAY,
        error="timed out",
    ),
    Case(
        "max_age used up: a dead letter",
        Attempt(500),
        row=row(3, NOW - 3595),
        next_try=None,
    ),
    Case(
        "410 parks the endpoint",
        Attempt(410),
        parked=True,
        error="HTTP 410 Gone: endpoint disabled",
    ),
    Case(
        "connection refused while others answer: counts",
        Attempt(0, error="cannot connect", connection_failed=True),
        next_try=10.0,
    ),
    Case(
        "connection refused everywhere: the uplink is down, nothing counts",
        Attempt(0, error="cannot connect", connection_failed=True),
        Health(link_down=True, link_probe=7.0),
        next_try=7.0,
        counts=False,
        failures=0,
        notices=(Notice.LINK_DOWN,),
        error="uplink down: cannot connect",
    ),
    Case(
        "still down: no second notice",
        Attempt(0, error="cannot connect", connection_failed=True),
        Health(link_was_down=True, link_down=True),
        next_try=5.0,
        counts=False,
        failures=0,
    ),
    Case(
        "the first answer after an outage",
        Attempt(200),
        Health(link_was_down=True),
        delivered=True,
        failures=0,
        notices=(Notice.LINK_BACK,),
    ),
    Case(
        "the failure that opens the breaker",
        Attempt(500),
        Health(failures=BREAKER_THRESHOLD - 1, breaker_probe=5.0),
        next_try=10.0,
        failures=BREAKER_THRESHOLD,
        probe_in=5.0,
        notices=(Notice.CIRCUIT_OPEN,),
    ),
    Case(
        "probes back off while the breaker is open (x1.5 a failed probe)",
        Attempt(500),
        Health(failures=BREAKER_THRESHOLD + 1, breaker_probe=5.0),
        next_try=10.0,
        failures=BREAKER_THRESHOLD + 2,
        probe_in=11.25,
    ),
    Case(
        "probes are capped at a minute (an endpoint back is found within it)",
        Attempt(500),
        Health(failures=BREAKER_THRESHOLD + 30),
        next_try=10.0,
        failures=BREAKER_THRESHOLD + 31,
        probe_in=60.0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_policy(case: Case) -> None:
    verdict = decide(ENDPOINT, case.row, case.attempt, case.health, NOW, jitter=0.5)
    outcome = verdict.outcome
    assert outcome.delivered is case.delivered
    if not case.delivered and not case.parked:
        expected = None if case.next_try is None else NOW + case.next_try
        assert outcome.next_try == expected
    assert outcome.counts is case.counts
    assert outcome.park_endpoint is case.parked
    assert verdict.failures == case.failures
    expected_probe = None if case.probe_in is None else NOW + case.probe_in
    assert verdict.probe_at == expected_probe
    assert verdict.notices == case.notices
    if case.error is not None:
        assert outcome.error == case.error


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.8), (0.5, 1.0), (0.999999, 1.2)])
def test_jitter_spreads_retries_by_twenty_percent(draw: float, factor: float) -> None:
    verdict = decide(ENDPOINT, row(), Attempt(500), Health(), NOW, jitter=draw)
    assert verdict.outcome.next_try == pytest.approx(NOW + 10.0 * factor)
