"""Delivering outbox rows: one worker per endpoint, retries with backoff.

A row leaves the outbox only after a 2xx answer. Every attempt carries the
same ``webhook-id`` and the stored body bytes, with a fresh timestamp and
signature. Endpoints never wait for each other: each has its own worker,
and with ``concurrency: 1`` (the default) its messages arrive in order.

Two things keep a dead link from eating the retry budget:

- **Uplink down.** When every endpoint tried lately fails at the connection
  level (refused, unreachable, DNS, connect timeout), the gateway is
  offline: attempts stop counting, rows are not aged towards ``max_age``,
  and each endpoint is probed with one row every few seconds. The first
  HTTP answer from anywhere ends it and every worker resumes.
- **Circuit breaker.** An endpoint that failed ``BREAKER_THRESHOLD`` times
  in a row (while the link is up) is probed with one row (the oldest, due
  or not) at a growing interval (2 s, x1.5 each time, at most 60 s)
  instead of being sent every due row. When a probe succeeds, every row
  of the endpoint waiting for a retry is due at once: what queued during
  an outage leaves as soon as the endpoint is back, not at each row's own
  retry time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, assert_never

import aiohttp
import yarl

from gateway import __version__
from gateway.config.models import WebhookEndpoint
from gateway.metrics import DeliveryMetrics
from gateway.outbox import http11
from gateway.outbox.endpoints import (
    BREAKER_FIRST_PROBE,
    THROTTLE_DELAY,
    EndpointState,
    log_outcome,
    parse_retry_after,
)
from gateway.outbox.jobs import Committed
from gateway.outbox.policy import Attempt, Health, Notice, decide
from gateway.outbox.rows import Outcome, Row, due_rows, release_rows
from gateway.outbox.shapes import Outgoing, outgoing
from gateway.outbox.store import OutboxStore

_LOG = logging.getLogger(__name__)

PREFETCH = 64  # rows read at once for concurrency > 1
IDLE_POLL = 30.0  # look at the database this often even when nothing woke us
LINK_PROBE = 5.0  # while the uplink is down, each endpoint tries one row this often
USER_AGENT = f"edge-gateway/{__version__}"


class Delivery:
    """Sends what the outbox holds, to every configured endpoint."""

    def __init__(
        self,
        store: OutboxStore,
        endpoints: Mapping[str, WebhookEndpoint],
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        metrics: DeliveryMetrics | None = None,
        link_probe: float = LINK_PROBE,
        breaker_probe: float = BREAKER_FIRST_PROBE,
    ) -> None:
        self.store = store
        self.endpoints = dict(endpoints)
        self.clock = clock
        self.jitter = jitter
        self.metrics = metrics or DeliveryMetrics()
        self.link_probe = link_probe
        self.breaker_probe = breaker_probe
        self.states: dict[str, EndpointState] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._plain = http11.Client(USER_AGENT)  # plain http:// endpoints
        self._at_once: dict[http11.Sent, asyncio.TimerHandle] = {}  # sent without a task
        self._group: asyncio.TaskGroup | None = None

    # ------------------------------------------------------------------ control

    def wake(self, endpoints: Iterable[str]) -> None:
        """Rows of these endpoints changed in the database: read it (call on the loop)."""
        for name in endpoints:
            state = self.states.get(name)
            if state is not None:
                state.caught_up = False
                state.wake.set()

    def committed(self, committed: Committed) -> None:
        """On the loop, after a commit: a worker that has sent everything the
        database held takes the new rows as they are (no read back), and while it
        has a free slot they are sent from here (no turn of the worker for each);
        the others read them."""
        for row in committed.rows:
            name = row.endpoint
            if (state := self.states.get(name)) is None:
                continue
            if not state.caught_up:
                state.missed = True
            elif not state.ready and (endpoint := self._sending_freely(name, state)) is not None:
                self._start(name, endpoint, state, row)
                continue
            else:
                state.ready.append(row)
            state.wake.set()

    def _sending_freely(self, name: str, state: EndpointState) -> WebhookEndpoint | None:
        """The endpoint, if its worker would send a row now: it runs, has a free slot,
        and neither its breaker nor the uplink has it probing."""
        endpoint = self.endpoints.get(name)
        if endpoint is None or name not in self._workers or state.breaker_open:
            return None
        return None if len(state.in_flight) >= endpoint.concurrency or self.link_down else endpoint

    def wake_all(self) -> None:
        self.wake(list(self.states))

    @property
    def link_down(self) -> bool:
        """Every endpoint tried since start failed at the connection level last time."""
        known = [s.unreachable for s in self.states.values() if s.unreachable is not None]
        return bool(known) and all(known)

    def describe(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "link": "down" if self.link_down else "up",
            "endpoints": {name: s.describe(now) for name, s in self.states.items()},
        }

    def update(self, endpoints: Mapping[str, WebhookEndpoint]) -> None:
        """Use a reloaded config's endpoints; changed ones restart their worker."""
        old = self.endpoints
        self.endpoints = dict(endpoints)
        for name, task in list(self._workers.items()):
            if name not in self.endpoints or self.endpoints[name] != old.get(name):
                task.cancel()
                del self._workers[name]
                self.states[name].drop_ready()
                self.states[name].caught_up = False
                if name not in self.endpoints:
                    self.states.pop(name, None)
        self._start_workers()

    async def run(self) -> None:
        """Deliver until cancelled (the shutdown path). Rows in flight stay in the
        database and are sent again after the next start."""
        connector = aiohttp.TCPConnector(limit=256, limit_per_host=64)
        session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": USER_AGENT},
            cookie_jar=aiohttp.DummyCookieJar(),  # a receiver's cookies are not ours to keep
        )
        async with (
            session as s,
            asyncio.TaskGroup() as group,
        ):
            self._session, self._group = s, group
            self._start_workers()
            try:
                await asyncio.Event().wait()  # until cancelled
            finally:
                for sent, timer in self._at_once.items():  # in the database: sent after a start
                    timer.cancel()
                    sent.abort()
                self._at_once.clear()
                self._plain.close()

    def _start_workers(self) -> None:
        if self._group is None:
            return
        for name in self.endpoints:
            if name not in self._workers:
                state = self.states.setdefault(name, EndpointState())
                self._workers[name] = self._group.create_task(
                    self._worker(name, state), name=f"webhook:{name}"
                )

    # ------------------------------------------------------------------ the worker

    async def _worker(self, name: str, state: EndpointState) -> None:
        while True:
            endpoint = self.endpoints[name]
            state.wake.clear()
            now = self.clock()
            wait = IDLE_POLL
            free = endpoint.concurrency - len(state.in_flight)
            if state.breaker_open and now < state.probe_at:
                free, wait = 0, state.probe_at - now
            elif (state.breaker_open or self.link_down) and state.in_flight:
                free = 0  # one probe at a time
            elif state.breaker_open or self.link_down:
                free = min(free, 1)
            if free > 0:
                if not state.ready and not state.caught_up:
                    # a probe takes the oldest row, due or not (its own retry may be far)
                    probe_now = float("inf") if state.breaker_open else now
                    upcoming = await self._fetch(name, endpoint, state, probe_now)
                    if upcoming is not None:
                        wait = min(wait, upcoming - self.clock())
                if state.ready:
                    for _ in range(min(free, len(state.ready))):
                        self._start(name, endpoint, state, state.ready.popleft())
                    continue
            if wait > 0:
                try:
                    async with asyncio.timeout(min(wait, IDLE_POLL)):
                        await state.wake.wait()
                except TimeoutError:
                    state.caught_up = False  # look at the database now and then anyway

    async def _fetch(
        self, name: str, endpoint: WebhookEndpoint, state: EndpointState, now: float
    ) -> float | None:
        """Read due rows into ``state.ready``; return when the next one is due."""
        in_order = endpoint.concurrency == 1
        state.missed = False
        scanned = state.scanned
        try:
            due = await self.store.call(
                partial(
                    due_rows,
                    endpoint=name,
                    now=now,
                    limit=1 if in_order else max(PREFETCH, endpoint.concurrency),
                    exclude=frozenset(state.in_flight),
                    in_order=in_order,
                    scanned=scanned,
                )
            )
        except Exception as exc:
            _LOG.error("outbox: cannot read the queue of %s: %s", name, exc)
            return None
        known = state.in_flight | {r.seq for r in state.ready}
        state.ready.extend(r for r in due.rows if r.seq not in known)
        if state.scanned == scanned:  # else rows were dropped from ready while we read
            state.scanned = due.scanned
        # nothing due, nothing waiting, and no commit while we read: new rows come to us
        state.caught_up = not due.rows and due.upcoming is None and not state.missed
        return due.upcoming

    def _start(self, name: str, endpoint: WebhookEndpoint, state: EndpointState, row: Row) -> None:
        state.in_flight.add(row.seq)
        request: Outgoing | None = None
        try:  # signed once, whichever way it is sent
            request = outgoing(endpoint, row.id, row.body, row.request, int(self.clock()))
            if self._send_at_once(name, endpoint, state, row, request):
                return
        except Exception:  # the task's attempt meets it again, and backs off
            _LOG.debug("outbox: %s to %s: not sent at once", row.id, name, exc_info=True)
        self._group_task(self._send(name, endpoint, state, row, request))

    def _send_at_once(
        self,
        name: str,
        endpoint: WebhookEndpoint,
        state: EndpointState,
        row: Row,
        request: Outgoing,
    ) -> bool:
        """The usual attempt without a task: a plain ``http://`` endpoint with a kept-alive
        connection idle. The request is written now and the attempt concluded from the
        connection's protocol as the answer arrives (a timer bounds it). False, and
        nothing sent, when there is no such connection: the task's way then."""
        start, started = self.clock(), time.monotonic()
        url = _url(request.url)
        if not _is_plain(url):
            return False

        def done(result: http11.Answer | Exception | None) -> None:
            if (timer := self._at_once.pop(sent, None)) is not None:
                timer.cancel()
            if result is None:  # the server had closed the kept connection: again, on a new one
                self._group_task(self._send(name, endpoint, state, row, request))
                return
            try:
                attempt = self._plain_attempt(endpoint, result)
                self._conclude(name, endpoint, state, row, attempt, start, started)
            except Exception:
                _LOG.exception("outbox: delivering %s to %s failed unexpectedly", row.id, name)
                self._group_task(self._recover(state, row))
                return
            self._free(state, row)

        def expired() -> None:
            sent.abort()
            done(TimeoutError())

        try:
            maybe = self._plain.send_kept(*_lean(request, url), done)
        except ValueError:  # the task's attempt says what is wrong with the request
            return False
        if maybe is None:
            return False
        sent = maybe
        self._at_once[sent] = asyncio.get_running_loop().call_later(endpoint.timeout, expired)
        return True

    def _group_task(self, coro: Any) -> None:
        assert self._group is not None
        self._group.create_task(coro)

    async def _send(
        self,
        name: str,
        endpoint: WebhookEndpoint,
        state: EndpointState,
        row: Row,
        request: Outgoing | None = None,
    ) -> None:
        """One attempt on a task; ``request`` when it was already signed for it."""
        try:
            start, started = self.clock(), time.monotonic()
            attempt = await self._post(endpoint, row, start, request)
            self._conclude(name, endpoint, state, row, attempt, start, started)
        except Exception:  # a bug here must not stop every other delivery, nor loop hot
            _LOG.exception("outbox: delivering %s to %s failed unexpectedly", row.id, name)
            await self._back_off(state, row)
        finally:
            self._free(state, row)

    async def _recover(self, state: EndpointState, row: Row) -> None:
        try:
            await self._back_off(state, row)
        finally:
            self._free(state, row)

    def _free(self, state: EndpointState, row: Row) -> None:
        state.in_flight.discard(row.seq)
        if state.ready or not state.caught_up:
            state.wake.set()  # else nothing waits for this slot: new rows wake the worker

    def _conclude(
        self,
        name: str,
        endpoint: WebhookEndpoint,
        state: EndpointState,
        row: Row,
        attempt: Attempt,
        start: float,
        started: float,
    ) -> None:
        """An attempt's end, whichever way it was sent: the policy asked, what it says
        about the endpoint kept, its notices logged, the outcome recorded and told."""
        was_down = self.link_down
        state.unreachable = attempt.connection_failed
        health = Health(
            state.failures, was_down, self.link_down, self.link_probe, self.breaker_probe
        )
        verdict = decide(
            endpoint, row, attempt, health, start, time.monotonic() - started, self.jitter()
        )
        state.failures = verdict.failures
        if verdict.probe_at is not None:
            state.probe_at = verdict.probe_at
        for notice in verdict.notices:
            if notice is Notice.LINK_BACK:
                _LOG.info("uplink is back (%s answered): resuming deliveries", name)
                self.wake_all()
            elif notice is Notice.LINK_DOWN:
                _LOG.warning(
                    "uplink looks down (every endpoint refuses connections): attempts stop "
                    "counting; probing every %gs",
                    self.link_probe,
                )
            elif notice is Notice.CIRCUIT_OPEN:
                _LOG.warning(
                    "endpoint %s failed %d times in a row: circuit open, probing",
                    name,
                    state.failures,
                )
            elif notice is Notice.CIRCUIT_CLOSED:
                _LOG.info("endpoint %s answers again: circuit closed, its queue resumes", name)
                self._group_task(self._release(name, state))
            else:
                assert_never(notice)
        outcome = verdict.outcome
        self.store.record(outcome)  # a read of the queue asked for after this sees it
        if not outcome.delivered:  # it waits in the database: read it from there, in order
            state.caught_up = False
            if endpoint.concurrency == 1:
                state.drop_ready()
        self.metrics.observe(name, outcome, self.clock())
        log_outcome(name, outcome)

    async def _release(self, name: str, state: EndpointState) -> None:
        """A closed circuit: the endpoint's waiting rows are due now."""
        try:
            await self.store.call(partial(release_rows, endpoint=name, now=self.clock()))
        except Exception as exc:
            _LOG.error("outbox: cannot resume the queue of %s: %s", name, exc)
        state.wake.set()

    async def _back_off(self, state: EndpointState, row: Row) -> None:
        """After an unexpected error: try the row again later, not at once."""
        now = self.clock()
        outcome = Outcome(
            row, now, 0.0, 0, "unexpected error (see the log)", "", False, now + THROTTLE_DELAY
        )
        state.caught_up = False
        self.store.record(outcome)
        await asyncio.sleep(1.0)  # a bug must not loop hot

    async def _post(
        self, endpoint: WebhookEndpoint, row: Row, now: float, request: Outgoing | None = None
    ) -> Attempt:
        """One attempt; ``request`` when it was already signed for this attempt."""
        if request is None:
            request = outgoing(endpoint, row.id, row.body, row.request, int(now))
        url = _url(request.url)
        if _is_plain(url):
            return await self._post_plain(endpoint, request, url)
        assert self._session is not None
        try:
            async with self._session.request(
                request.method,
                url,
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
                timeout=_timeout(endpoint.timeout, endpoint.connect_timeout),
            ) as resp:
                response = (await resp.content.read(2048)).decode("utf-8", "replace")
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), self.clock())
                return Attempt(resp.status, None, response, retry_after, False, False)
        except aiohttp.ConnectionTimeoutError:
            return _no_connection(endpoint)
        except TimeoutError:
            return _timed_out(endpoint)
        except (aiohttp.ClientConnectorError, aiohttp.ClientConnectorDNSError) as exc:
            return _cannot_connect(exc.os_error or exc)
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Attempt(0, error, "", None, False, False)
        except OSError as exc:
            return Attempt(0, f"network error: {exc}", "", None, True, False)
        except Exception as exc:  # whatever the receiver answers: an attempt that backs off
            return Attempt(
                0, f"bad answer: {type(exc).__name__}: {exc}"[:300], "", None, False, False
            )

    async def _post_plain(
        self, endpoint: WebhookEndpoint, request: Outgoing, url: yarl.URL
    ) -> Attempt:
        """The same attempt as through aiohttp, on the lean client (see http11)."""
        result: http11.Answer | Exception
        try:
            async with asyncio.timeout(endpoint.timeout):
                result = await self._plain.request(*_lean(request, url), endpoint.connect_timeout)
        except (TimeoutError, OSError, http11.AnswerError, ValueError) as exc:
            result = exc
        return self._plain_attempt(endpoint, result)

    def _plain_attempt(
        self, endpoint: WebhookEndpoint, result: http11.Answer | Exception
    ) -> Attempt:
        """The attempt an answer (or the lean client's error) makes."""
        if isinstance(result, http11.Answer):
            response = result.body.decode("utf-8", "replace")
            retry_after = parse_retry_after(result.retry_after, self.clock())
            return Attempt(result.status, None, response, retry_after, False, False)
        if isinstance(result, http11.ConnectTimeout):
            return _no_connection(endpoint)
        if isinstance(result, TimeoutError):
            return _timed_out(endpoint)
        if isinstance(result, http11.ConnectError):
            return _cannot_connect(result)
        if isinstance(result, http11.AnswerError):
            return Attempt(0, f"bad answer: {result}"[:300], "", None, False, False)
        if isinstance(result, ValueError):
            return Attempt(0, f"bad request: {result}"[:300], "", None, False, False)
        if isinstance(result, OSError):
            return Attempt(0, f"network error: {result}", "", None, False, False)
        raise result


def _is_plain(url: yarl.URL) -> bool:
    """Sent by the lean client: plain http, no credentials in the URL."""
    return url.scheme == "http" and bool(url.raw_host) and url.user is None and url.password is None


def _lean(request: Outgoing, url: yarl.URL) -> tuple[str, str, int, str, Mapping[str, str], bytes]:
    """What the lean client sends for ``request``: method, host, port, target, headers, body."""
    assert url.raw_host is not None  # _is_plain(url)
    assert url.port is not None
    return (
        request.method,
        url.raw_host,
        url.port,
        url.raw_path_qs or "/",
        request.headers,
        request.body,
    )


def _no_connection(endpoint: WebhookEndpoint) -> Attempt:
    return Attempt(0, f"no connection within {endpoint.connect_timeout:g}s", "", None, True, True)


def _timed_out(endpoint: WebhookEndpoint) -> Attempt:
    return Attempt(0, f"timed out after {endpoint.timeout:g}s", "", None, False, True)


def _cannot_connect(cause: object) -> Attempt:
    return Attempt(0, f"cannot connect: {cause}", "", None, True, False)


@functools.lru_cache(maxsize=256)
def _url(url: str) -> yarl.URL:
    """An endpoint's URL parsed once, not for every request."""
    return yarl.URL(url)


@functools.lru_cache(maxsize=64)
def _timeout(total: float, connect: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, sock_connect=connect)
