"""Applies the engine's decisions: actuators, timers, the outbox, the log.

The runtime keeps the current sensor values, asks the pure engine what to
do for each event, and does it through two small interfaces, so the daemon
(real GPIO, SQLite outbox) and rule tests (memory, virtual clock) share it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from gateway.config.models import GatewayConfig, VirtualSensor
from gateway.events import Event, SensorChanged, Value
from gateway.rules.engine import (
    Decision,
    RuleEngine,
    SendWebhook,
    SetActuator,
    Snapshot,
    WriteLog,
)
from gateway.rules.timers import Timer, TimerTable

_LOG = logging.getLogger(__name__)


class ActuatorBank(Protocol):
    """The actuators, whatever drives them."""

    def names(self) -> Iterable[str]: ...
    def get(self, name: str) -> bool: ...
    def set(self, name: str, state: bool) -> None: ...


class WebhookSink(Protocol):
    """Where webhook decisions go (the outbox)."""

    def submit(self, endpoint: str, event: str, data: Any) -> str: ...


class Runtime:
    """Sensor values, the engine, and the timers of one loaded config."""

    def __init__(
        self,
        config: GatewayConfig,
        actuators: ActuatorBank,
        webhooks: WebhookSink,
        timers: TimerTable,
        clock: Callable[[], float],
        tz: dt.tzinfo | None = None,
    ) -> None:
        self.config = config
        self.actuators = actuators
        self.webhooks = webhooks
        self.timers = timers
        self.clock = clock
        self.tz = tz
        self.engine = RuleEngine(list(config.rules))
        self.sensors: dict[str, Value] = {}
        for name, sensor in config.sensors.items():
            if isinstance(sensor, VirtualSensor) and sensor.initial is not None:
                self.sensors[name] = sensor.initial
        self.timers.keep_only(set(config.actuators))
        self.on_timers_changed: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ inputs

    def reading(self, sensor: str, value: Value, source: str) -> SensorChanged | None:
        """A new reading of ``sensor``; rules run when it differs from the last one."""
        previous = self.sensors.get(sensor)
        if previous is not None and previous == value and type(previous) is type(value):
            return None
        self.sensors[sensor] = value
        event = SensorChanged(sensor, value, previous, self.clock(), source)
        _LOG.debug("sensor %s: %r -> %r (%s)", sensor, previous, value, source)
        self.handle(event)
        return event

    def handle(self, event: Event) -> None:
        """Run every rule that ``event`` fires."""
        for decision in self.engine.decide(event, self.snapshot()):
            self._apply(decision)

    def snapshot(self) -> Snapshot:
        now = dt.datetime.fromtimestamp(self.clock(), self.tz).astimezone(self.tz)
        states = {name: self.actuators.get(name) for name in self.actuators.names()}
        return Snapshot(self.sensors, states, now, self.config.gateway.name)

    # ------------------------------------------------------------------ actions

    def actuate(self, name: str, state: bool | str, revert_after: float | None, who: str) -> bool:
        """Switch an actuator (``state`` may be "toggle"); returns the new state."""
        current = self.actuators.get(name)
        new = (not current) if state == "toggle" else bool(state)
        if revert_after is not None:
            due = self.clock() + revert_after
            self.timers.set(Timer("revert", name, not new, due, who))
        else:
            self.timers.cancel("revert", name)
        if new != current:
            self.actuators.set(name, new)
            _LOG.info(
                "%s %s by %s%s",
                name,
                "on" if new else "off",
                who,
                f" for {revert_after:g}s" if revert_after is not None else "",
            )
        self._limit_on_time(name, new)
        self.on_timers_changed()
        return new

    def _limit_on_time(self, name: str, state: bool) -> None:
        limit = self.config.actuators[name].max_on
        if limit is None:
            return
        if state and self.timers.get("max_on", name) is None:
            self.timers.set(Timer("max_on", name, False, self.clock() + limit, "max_on"))
        elif not state:
            self.timers.cancel("max_on", name)

    def _apply(self, decision: Decision) -> None:
        try:
            if isinstance(decision, SetActuator):
                self.actuate(
                    decision.actuator,
                    decision.state,
                    decision.revert_after,
                    f"rule {decision.rule}",
                )
            elif isinstance(decision, SendWebhook):
                msg_id = self.webhooks.submit(decision.endpoint, decision.event, decision.data)
                _LOG.info(
                    "rule %s: webhook %s queued for %s as %s",
                    decision.rule,
                    decision.event,
                    decision.endpoint,
                    msg_id,
                )
            elif isinstance(decision, WriteLog):
                _LOG.log(decision.level, "rule %s: %s", decision.rule, decision.message)
        except Exception:  # one failed action must not stop the others or the daemon
            _LOG.exception("rule %s: action %s failed", decision.rule, type(decision).__name__)

    # ------------------------------------------------------------------ timers

    def next_due(self) -> float | None:
        return self.timers.next_due()

    def run_due(self) -> None:
        """Fire every timer whose time has come (late ones at once)."""
        now = self.clock()
        for timer in self.timers.pop_due(now):
            if timer.actuator not in self.config.actuators:
                continue
            late = now - timer.due
            why = "max_on limit" if timer.kind == "max_on" else f"timer from {timer.rule}"
            if late > 1:
                why += f", {late:.0f}s late (was the gateway stopped?)"
            self.timers.cancel("revert" if timer.kind == "max_on" else "max_on", timer.actuator)
            if self.actuators.get(timer.actuator) != timer.state:
                self.actuators.set(timer.actuator, timer.state)
                _LOG.info("%s %s (%s)", timer.actuator, "on" if timer.state else "off", why)
            self._limit_on_time(timer.actuator, timer.state)
