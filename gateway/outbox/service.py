"""The outbox as the rest of the gateway sees it: one object that owns the
store (the SQLite thread), the delivery workers and the wake-up between them.

Start it with ``with outbox:`` inside the event loop (the store's commits
wake the workers through it) and run :meth:`Outbox.run` as a task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from gateway.config.models import WebhookEndpoint
from gateway.config.storage import OutboxSection
from gateway.metrics import DeliveryMetrics
from gateway.outbox import queries
from gateway.outbox.database import outbox_size
from gateway.outbox.delivery import Delivery
from gateway.outbox.shapes import render_request
from gateway.outbox.store import OutboxStore
from gateway.signing import new_message_id

_LOG = logging.getLogger(__name__)

ATTEMPT_LOG_DAYS = 7


class Outbox:
    """Webhooks committed before they are sent, and everything one can ask about them."""

    def __init__(
        self,
        path: Path,
        section: OutboxSection,
        endpoints: Mapping[str, WebhookEndpoint],
        clock: Callable[[], float] = time.time,
        **delivery: Any,
    ) -> None:
        self.clock = clock
        self.store = OutboxStore(
            path,
            max_rows=section.max_rows,
            max_bytes=section.max_bytes,
            when_full=section.when_full,
            commit_window=section.commit_window,
            clock=clock,
        )
        self.delivery = Delivery(self.store, endpoints, clock=clock, **delivery)
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        """Open the database (raises :class:`OutboxError`); call on the event loop."""
        self._loop = asyncio.get_running_loop()
        self.store.on_commit = self.delivery.committed
        self.store.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.store.stop()
        self._loop = None

    async def run(self) -> None:
        """Deliver until cancelled."""
        await self.delivery.run()

    def update(self, endpoints: Mapping[str, WebhookEndpoint]) -> None:
        """Use a reloaded config's endpoints."""
        self.delivery.update(endpoints)

    # ------------------------------------------------------------------ producers

    def submit(self, endpoint: str, event: str, data: Any) -> str:
        """Queue a webhook; its ``webhook-id``. Thread-safe, never blocks. A shaped
        endpoint's request is rendered now (:class:`TemplateError` if it cannot be)."""
        config = self.delivery.endpoints.get(endpoint)
        if config is None or not config.shaped:
            msg_id = self.store.submit(endpoint, event, data)
        else:
            msg_id, now = new_message_id(), self.clock()
            rendered = render_request(config, event, data, msg_id, now)
            self.store.submit_rendered(
                msg_id, endpoint, event, rendered.body, rendered.request, now
            )
        if self.metrics.listeners:
            self.metrics.tell({"id": msg_id, "endpoint": endpoint, "outcome": "queued"})
        return msg_id

    def mark(self) -> int:
        return self.store.mark()

    async def flushed(self, since: int | None = None) -> None:
        """Everything submitted so far is committed; :class:`OutboxError` if any
        submission after the mark ``since`` could not be."""
        await self.store.flushed(since)

    async def hook_seen(self, hook: str, msg_id: str, window: float) -> bool:
        since = self.clock() - window
        return await self.store.call(
            partial(queries.hook_seen, hook=hook, msg_id=msg_id, since=since)
        )

    def remember_hook(self, hook: str, msg_id: str) -> None:
        """Remember a delivery id in the transaction of the webhooks submitted before."""
        self.store.remember_hook(hook, msg_id)

    # ------------------------------------------------------------------ what it holds

    async def stats(self, endpoints: Collection[str] = (), live: bool = False) -> dict[str, Any]:
        """Depth, oldest age, dead letters and counters, overall and per endpoint;
        ``endpoints`` with no rows are listed with zeros; ``live`` adds what the
        delivery workers know (uplink, breakers, requests in flight)."""
        stats = await self.store.call(lambda db: queries.stats(db, self.clock()))
        per = stats["endpoints"]
        for name in endpoints:  # a series with no rows is 0, never missing
            per.setdefault(name, {"pending": 0, "dead": 0, "oldest_age": None})
        if live:
            described = self.delivery.describe()
            stats["link"] = described["link"]
            for name, state in described["endpoints"].items():
                per.setdefault(name, {"pending": 0, "dead": 0, "oldest_age": None}).update(state)
        return stats

    @property
    def metrics(self) -> DeliveryMetrics:
        return self.delivery.metrics

    async def size(self) -> int:
        rows, _ = await self.store.call(outbox_size)
        return rows

    async def messages(
        self, state: str | None, endpoint: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return await self.store.call(
            partial(queries.list_messages, state=state, endpoint=endpoint, limit=limit)
        )

    async def message(self, msg_id: str) -> dict[str, Any] | None:
        return await self.store.call(partial(queries.show_message, msg_id=msg_id))

    async def retry(self, msg_id: str) -> bool:
        """A dead letter (or a waiting row) is due now; False if there is no such row."""
        found = await self.store.call(lambda db: queries.retry(db, self.clock(), msg_id=msg_id))
        self.delivery.wake_all()
        return found > 0

    async def enable_endpoint(self, endpoint: str) -> None:
        now = self.clock()
        if await self.store.call(partial(queries.enable_endpoint, endpoint=endpoint, now=now)):
            _LOG.info("endpoint %s re-enabled", endpoint)
        self.delivery.wake([endpoint])

    async def prune(self, replay_window: float) -> None:
        """Forget attempt logs older than a week and hook ids older than the window."""
        now = self.clock()
        await self.store.call(
            partial(
                queries.prune,
                attempts_before=now - ATTEMPT_LOG_DAYS * 86400,
                seen_before=now - replay_window,
            )
        )
