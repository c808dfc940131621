"""Alerts about the gateway itself: each problem once per episode, a recovery message
when it clears, rate-limited, and never about the alerts' own delivery in a loop.

:class:`Episodes` is pure (problems and the time in, messages out), so its rules
are tested on their own; :func:`problems` reads them off the running gateway;
:class:`AlertMonitor` checks every few seconds and queues what is to be sent in
the outbox, where it is committed, retried and dead-lettered like any webhook.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.config.alerts import AlertsSection
from gateway.control import Control

_LOG = logging.getLogger(__name__)
CHECK_EVERY = 5.0  # seconds

Problems = dict[tuple[str, str], str]  # (kind, what) -> what is wrong, in words


@dataclass(frozen=True, slots=True)
class Message:
    key: tuple[str, str]
    text: str
    recovered: bool


@dataclass
class Episodes:
    """Which problems are open, and what to say as they open and close."""

    min_interval: float
    open: dict[tuple[str, str], bool] = field(default_factory=dict)  # key -> was it sent
    last_sent: dict[tuple[str, str], float] = field(default_factory=dict)
    suppressed: int = 0

    def observe(self, problems: Problems, now: float, quiet: set[tuple[str, str]]) -> list[Message]:
        """``quiet``: problems that are logged, never sent (the alerts' own endpoint)."""
        out = []
        for key, text in problems.items():
            if key in self.open:
                continue
            recent = now - self.last_sent.get(key, float("-inf")) < self.min_interval
            send = key not in quiet and not recent
            self.open[key] = send
            if send:
                self.last_sent[key] = now
                out.append(Message(key, text, recovered=False))
            else:
                self.suppressed += 1
                _LOG.warning("alert (not sent%s): %s", ", repeated" if recent else "", text)
        for key in [k for k in self.open if k not in problems]:
            if self.open.pop(key):
                out.append(Message(key, _recovered(key), recovered=True))
        return out


def _recovered(key: tuple[str, str]) -> str:
    kind, what = key
    return {
        "dead": f"no dead letters for {what} any more",
        "disabled": f"{what} is enabled again",
        "input": f"input {what} is connected again",
        "sensor": f"sensor {what} is reading again",
        "disk": "the outbox stores webhooks again",
        "outbox": "the outbox is below its alert level again",
    }.get(kind, f"{kind} {what}: fine again")


def problems(
    control: Control, stats: dict[str, Any], down_since: dict[str, float], now: float
) -> Problems:
    """What is wrong now (``down_since``: when each input went down, kept by the caller)."""
    alerts = control.config.alerts
    assert alerts is not None
    found: Problems = {}
    for name, entry in stats.get("endpoints", {}).items():
        if entry.get("dead"):
            found[("dead", name)] = f"{entry['dead']} webhook(s) to {name} gave up (dead letters)"
        if entry.get("disabled"):
            found[("disabled", name)] = f"{name} answered 410 Gone and is disabled"
    for name, state in control.inputs().items():
        if state.get("state") == "connected":
            down_since.pop(name, None)
            continue
        since = down_since.setdefault(name, now)
        if now - since >= alerts.input_down:
            found[("input", name)] = f"input {name} has been disconnected for {now - since:.0f}s"
    for name in sorted(control.live.runtime.unavailable):
        found[("sensor", name)] = f"sensor {name} is unavailable"
    if control.outbox.store.failing:
        found[("disk", "outbox")] = "the outbox cannot store webhooks (is the disk full?)"
    held = stats.get("pending", 0) + stats.get("dead", 0)
    cap = control.config.outbox.max_rows
    if held >= alerts.outbox_near_cap * cap:
        found[("outbox", "rows")] = f"the outbox holds {held:,} of at most {cap:,} webhooks"
    return found


class AlertMonitor:
    """Checks every few seconds; sends through the outbox."""

    def __init__(self, control: Control) -> None:
        self.control = control  # its config may change at a reload: read it each time
        self.episodes = Episodes(AlertsSection.model_fields["min_interval"].default)
        self.down_since: dict[str, float] = {}

    def check(self, stats: dict[str, Any], now: float) -> list[Message]:
        alerts = self.control.config.alerts
        if alerts is None:
            return []
        self.episodes.min_interval = alerts.min_interval
        found = problems(self.control, stats, self.down_since, now)
        own = alerts.notify
        quiet = {k for k in found if k[0] in ("dead", "disabled") and k[1] == own}
        messages = self.episodes.observe(found, now, quiet)
        for message in messages:
            self._send(alerts.notify, message)
        return messages

    def _send(self, endpoint: str, message: Message) -> None:
        config = self.control.config.webhooks.get(endpoint)
        gateway = self.control.config.gateway.name
        (_LOG.info if message.recovered else _LOG.warning)("alert: %s", message.text)
        try:
            if config is not None and config.service is not None:
                note = {
                    "title": f"{gateway}: {'fine again' if message.recovered else 'problem'}",
                    "message": message.text,
                    "priority": "default" if message.recovered else "high",
                    "tags": ["white_check_mark"] if message.recovered else ["warning"],
                }
                self.control.outbox.submit(endpoint, "notify", note)
            else:
                event = "gateway.recovered" if message.recovered else "gateway.alert"
                data = {"gateway": gateway, "problem": message.key[0], "about": message.key[1]}
                self.control.outbox.submit(endpoint, event, {**data, "message": message.text})
        except Exception as exc:  # an alert must never take the gateway down
            _LOG.error("alert could not be queued: %s", exc)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY)
            if self.control.config.alerts is None:
                continue
            try:
                stats = await self.control.outbox.stats(self.control.config.webhooks)
                self.check(stats, time.time())
            except Exception as exc:
                _LOG.error("alerts: the check failed: %s", exc)
