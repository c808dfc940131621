"""What a delivery worker knows and says about one endpoint.

Its circuit breaker and queue of read rows (:class:`EndpointState`), how
long a ``Retry-After`` asks to wait, and the log line for each outcome.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gateway.outbox.rows import Outcome, Row

_LOG = logging.getLogger(__name__)

THROTTLED = frozenset({429, 502, 503, 504})
THROTTLE_DELAY = 60.0  # at least this long after 429/5xx-overload or a timeout, unless Retry-After
MAX_RETRY_AFTER = 24 * 3600.0
BREAKER_THRESHOLD = 5
BREAKER_FIRST_PROBE = 2.0
BREAKER_GROWTH = 1.5  # each failed probe waits this much longer: 2, 3, 4.5, 6.8, 10, ... s
BREAKER_MAX_PROBE = 60.0  # so an endpoint back after any outage is found within a minute


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²" or full-width digits
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except Exception:  # whatever a receiver sends: no usable Retry-After
        return None
    if when.tzinfo is None:
        return None
    return min(max(when.timestamp() - now, 0.0), MAX_RETRY_AFTER)


@dataclass
class EndpointState:
    """What a worker knows about its endpoint beyond the database."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: set[int] = field(default_factory=set)
    ready: deque[Row] = field(default_factory=deque)  # read from the database, not yet sent
    caught_up: bool = False  # the database holds nothing more to send: new rows come to ready
    missed: bool = False  # rows were committed while a read was under way
    scanned: int = 0  # rows never tried up to this seq are in ready or in flight (or done)
    unreachable: bool | None = None  # None: not tried since start
    failures: int = 0  # consecutive
    probe_at: float = 0.0  # breaker open: next probe time

    def drop_ready(self) -> None:
        """Forget the rows read but not sent: the next read finds them again."""
        if self.ready:
            self.scanned = min(self.scanned, min(r.seq for r in self.ready) - 1)
            self.ready.clear()

    @property
    def breaker_open(self) -> bool:
        return self.failures >= BREAKER_THRESHOLD

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "in_flight": len(self.in_flight),
            "reachable": None if self.unreachable is None else not self.unreachable,
            "consecutive_failures": self.failures,
            "breaker": "open" if self.breaker_open else "closed",
            "next_probe_in": round(max(self.probe_at - now, 0.0), 1) if self.breaker_open else None,
        }


def log_outcome(name: str, outcome: Outcome) -> None:
    row = outcome.row
    if outcome.delivered:
        if row.attempts:
            _LOG.info(
                "webhook %s (%s) delivered to %s after %d failed attempt(s)",
                row.id,
                row.event,
                name,
                row.attempts,
            )
        else:
            _LOG.debug("webhook %s (%s) delivered to %s", row.id, row.event, name)
    elif outcome.park_endpoint:
        _LOG.error(
            "endpoint %s answered 410 Gone: disabled, its webhooks are kept; "
            "re-enable with: gateway outbox enable %s",
            name,
            name,
        )
    elif not outcome.counts:
        _LOG.debug("webhook %s to %s deferred: %s", row.id, name, outcome.error)
    elif outcome.next_try is None:
        _LOG.error(
            "webhook %s (%s) to %s is a dead letter after %d attempts: %s",
            row.id,
            row.event,
            name,
            row.attempts + 1,
            outcome.error,
        )
    else:
        _LOG.info(
            "webhook %s (%s) to %s failed: %s; retry in %.0fs",
            row.id,
            row.event,
            name,
            outcome.error,
            outcome.next_try - outcome.time,
        )
