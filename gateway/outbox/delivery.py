"""Delivering outbox rows: one worker per endpoint, retries with backoff.

A row leaves the outbox only after a 2xx answer. Every attempt carries the
same ``webhook-id`` and the stored body bytes, with a fresh timestamp and
signature. Endpoints never wait for each other: each has its own worker,
and with ``concurrency: 1`` (the default) its messages arrive in order.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial

import aiohttp

from gateway import __version__
from gateway.config.models import WebhookEndpoint
from gateway.outbox.signing import signature_header
from gateway.outbox.store import OutboxStore, Outcome, Row, lease_due, record_outcomes

_LOG = logging.getLogger(__name__)

THROTTLED = frozenset({429, 502, 503, 504})
THROTTLE_DELAY = 60.0  # at least this long after 429/5xx-overload or a timeout, unless Retry-After
MAX_RETRY_AFTER = 24 * 3600.0
IDLE_POLL = 30.0  # look at the database this often even when nothing woke us
USER_AGENT = f"edge-gateway/{__version__}"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(when.timestamp() - now, 0.0), MAX_RETRY_AFTER)


class Delivery:
    """Sends what the outbox holds, to every configured endpoint."""

    def __init__(
        self,
        store: OutboxStore,
        endpoints: Mapping[str, WebhookEndpoint],
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.endpoints = dict(endpoints)
        self.clock = clock
        self.jitter = jitter
        self._wake: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._group: asyncio.TaskGroup | None = None

    def wake(self, endpoints: Iterable[str]) -> None:
        """New rows were committed for these endpoints (call on the loop)."""
        for name in endpoints:
            event = self._wake.get(name)
            if event is not None:
                event.set()

    def wake_all(self) -> None:
        self.wake(list(self._wake))

    def update(self, endpoints: Mapping[str, WebhookEndpoint]) -> None:
        """Use a reloaded config's endpoints; changed ones restart their worker."""
        old = self.endpoints
        self.endpoints = dict(endpoints)
        for name, task in list(self._workers.items()):
            if name not in self.endpoints or self.endpoints[name] != old.get(name):
                task.cancel()
                del self._workers[name]
        self._start_workers()

    async def run(self) -> None:
        """Deliver until cancelled (the shutdown path). In-flight rows stay leased
        in the database and are sent again after the next start."""
        connector = aiohttp.TCPConnector(limit=64, limit_per_host=16)
        async with (
            aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT}) as s,
            asyncio.TaskGroup() as group,
        ):
            self._session, self._group = s, group
            self._start_workers()
            await asyncio.Event().wait()  # until cancelled

    def _start_workers(self) -> None:
        if self._group is None:
            return
        for name in self.endpoints:
            if name not in self._workers:
                self._wake.setdefault(name, asyncio.Event())
                self._workers[name] = self._group.create_task(
                    self._worker(name), name=f"webhook:{name}"
                )

    async def _worker(self, name: str) -> None:
        wake = self._wake[name]
        while True:
            endpoint = self.endpoints[name]
            wake.clear()
            now = self.clock()
            try:
                rows, upcoming = await self.store.call(
                    partial(
                        lease_due,
                        endpoint=name,
                        now=now,
                        limit=endpoint.concurrency,
                        lease=endpoint.timeout + 30,
                        in_order=endpoint.concurrency == 1,
                    )
                )
            except Exception as exc:
                _LOG.error("outbox: cannot read queue of %s: %s", name, exc)
                rows, upcoming = [], now + IDLE_POLL
            if not rows:
                delay = IDLE_POLL if upcoming is None else upcoming - self.clock()
                if delay > 0:
                    try:
                        async with asyncio.timeout(min(delay, IDLE_POLL)):
                            await wake.wait()
                    except TimeoutError:
                        pass
                continue
            outcomes = await asyncio.gather(*(self._attempt(endpoint, name, r) for r in rows))
            try:
                await self.store.call(partial(record_outcomes, outcomes=outcomes))
            except Exception as exc:
                _LOG.error("outbox: cannot record delivery results for %s: %s", name, exc)
                await asyncio.sleep(1.0)
            for outcome in outcomes:
                _log_outcome(name, outcome)

    async def _attempt(self, endpoint: WebhookEndpoint, name: str, row: Row) -> Outcome:
        assert self._session is not None
        start = self.clock()
        started = time.monotonic()
        stamp = int(start)
        headers = {key: value.get_secret_value() for key, value in endpoint.headers.items()}
        headers.update(
            {
                "webhook-id": row.id,
                "webhook-timestamp": str(stamp),
                "content-type": "application/json",
            }
        )
        if endpoint.secrets:
            headers["webhook-signature"] = signature_header(
                endpoint.secrets, row.id, stamp, row.body
            )
        status, error, response, retry_after, throttled = 0, None, "", None, False
        try:
            async with self._session.post(
                endpoint.url,
                data=row.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=endpoint.timeout, sock_connect=endpoint.connect_timeout
                ),
            ) as resp:
                status = resp.status
                response = (await resp.content.read(2048)).decode("utf-8", "replace")
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), self.clock())
        except TimeoutError:
            error, throttled = f"timed out after {endpoint.timeout:g}s", True
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except OSError as exc:
            error = f"network error: {exc}"
        duration = time.monotonic() - started
        if 200 <= status < 300:
            return Outcome(row, start, duration, status, None, response, delivered=True)
        if status:
            error = f"HTTP {status}" + (
                " (redirects are not followed)" if 300 <= status < 400 else ""
            )
            throttled = status in THROTTLED
        if status == 410:
            return Outcome(
                row,
                start,
                duration,
                status,
                "HTTP 410 Gone: endpoint disabled",
                response,
                delivered=False,
                park_endpoint=True,
            )
        return Outcome(
            row,
            start,
            duration,
            status,
            error,
            response,
            delivered=False,
            next_try=self._next_try(endpoint, row, start, throttled, retry_after),
        )

    def _next_try(
        self,
        endpoint: WebhookEndpoint,
        row: Row,
        now: float,
        throttled: bool,
        retry_after: float | None,
    ) -> float | None:
        """When to try again, or None when ``max_age`` is used up (dead letter)."""
        schedule = endpoint.retry
        delay = schedule[min(row.attempts, len(schedule) - 1)] * (0.8 + 0.4 * self.jitter())
        if retry_after is not None:
            delay = max(delay, retry_after)
        elif throttled:
            delay = max(delay, THROTTLE_DELAY)
        first_try = row.first_try if row.first_try is not None else now
        if now + delay > first_try + endpoint.max_age:
            return None
        return now + delay


def _log_outcome(name: str, outcome: Outcome) -> None:
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
