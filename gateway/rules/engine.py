"""The rule engine: an event, the current states and the clock in; decisions out.

Pure: no I/O, no sleeping, no globals. The same engine runs in the daemon
and in ``gateway test`` scenarios on a virtual clock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.models import (
    ActuateAction,
    Condition,
    LogAction,
    Rule,
    SensorCondition,
    SensorTrigger,
    StartupTrigger,
    TimeCondition,
    WebhookAction,
)
from gateway.events import Event, GatewayStarted, SensorChanged, Value
from gateway.rules.templates import TemplateError, render, render_tree

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SetActuator:
    """Switch ``actuator`` to ``state``; with ``revert_after``, switch back after that long."""

    actuator: str
    state: bool | str  # True/False or "toggle"
    revert_after: float | None
    rule: str


@dataclass(frozen=True, slots=True)
class SendWebhook:
    """Queue a webhook of type ``event`` with ``data`` for ``endpoint``."""

    endpoint: str
    event: str
    data: Any
    rule: str


@dataclass(frozen=True, slots=True)
class WriteLog:
    level: int
    message: str
    rule: str


Decision = SetActuator | SendWebhook | WriteLog


@dataclass(frozen=True)
class Snapshot:
    """What the engine may look at: current values and the local time."""

    sensors: Mapping[str, Value]
    actuators: Mapping[str, Value]
    now: dt.datetime  # aware, local time
    gateway_name: str = "edge-gateway"


@dataclass
class RuleEngine:
    """Decides which rules an event fires and what they do."""

    rules: list[Rule]
    last_run: dict[str, float] = field(default_factory=dict)

    def decide(self, event: Event, snapshot: Snapshot) -> list[Decision]:
        """Every decision of every rule that ``event`` fires, in rule order."""
        decisions: list[Decision] = []
        for rule in self.rules:
            if not rule.enabled or not any(_fires(t, event) for t in rule.when):
                continue
            now = snapshot.now.timestamp()
            last = self.last_run.get(rule.id)
            if rule.cooldown is not None and last is not None and now - last < rule.cooldown:
                _LOG.debug("rule %s: in cooldown, not run", rule.id)
                continue
            if not all(_holds(c, snapshot) for c in rule.if_):
                _LOG.debug("rule %s: a condition does not hold", rule.id)
                continue
            self.last_run[rule.id] = now
            _LOG.info("rule %s fired by %s", rule.id, _describe(event))
            decisions.extend(_actions(rule, event, snapshot))
        return decisions


def _fires(trigger: object, event: Event) -> bool:
    if isinstance(trigger, StartupTrigger):
        return isinstance(event, GatewayStarted)
    if not isinstance(trigger, SensorTrigger) or not isinstance(event, SensorChanged):
        return False
    if trigger.sensor != event.sensor or event.value == event.previous:
        return False
    if trigger.to is not None and not _equal(event.value, trigger.to):
        return False
    if trigger.from_ is not None and not _equal(event.previous, trigger.from_):
        return False
    if trigger.above is not None or trigger.below is not None:
        # fires on the crossing into the range, not on every reading inside it
        return _in_range(event.value, trigger.above, trigger.below) and not _in_range(
            event.previous, trigger.above, trigger.below
        )
    return True


def _equal(value: Value | None, target: Value) -> bool:
    if isinstance(target, bool) or isinstance(value, bool):
        return value is target or (isinstance(value, bool) and value == target)
    if isinstance(target, int | float) and isinstance(value, int | float):
        return float(value) == float(target)
    return value == target


def _in_range(value: Value | None, above: float | None, below: float | None) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return (above is None or value > above) and (below is None or value < below)


def _holds(condition: Condition, snapshot: Snapshot) -> bool:
    if isinstance(condition, TimeCondition):
        return condition.time.contains(snapshot.now)
    assert isinstance(condition, SensorCondition)
    value = snapshot.sensors.get(condition.sensor)
    if value is None:
        return False
    if condition.is_ is not None and not _equal(value, condition.is_):
        return False
    if condition.above is not None or condition.below is not None:
        return _in_range(value, condition.above, condition.below)
    return True


def _describe(event: Event) -> str:
    if isinstance(event, SensorChanged):
        return f"{event.sensor}={_show(event.value)} ({event.source})"
    return "startup"


def _show(value: Value | None) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def template_context(rule: Rule, event: Event, snapshot: Snapshot) -> dict[str, Any]:
    """What templates see: ``event``, ``sensors``, ``actuators``, ``rule``, ``gateway``."""
    moment = dt.datetime.fromtimestamp(event.time, snapshot.now.tzinfo)
    event_vars: dict[str, Any] = {"time": moment.isoformat(timespec="seconds")}
    if isinstance(event, SensorChanged):
        event_vars.update(
            sensor=event.sensor, value=event.value, previous=event.previous, source=event.source
        )
    else:
        event_vars.update(sensor=None, value=None, previous=None, source="startup")
    return {
        "event": event_vars,
        "sensors": dict(snapshot.sensors),
        "actuators": dict(snapshot.actuators),
        "rule": {"id": rule.id, "description": rule.description},
        "gateway": {"name": snapshot.gateway_name},
    }


def _actions(rule: Rule, event: Event, snapshot: Snapshot) -> list[Decision]:
    context = template_context(rule, event, snapshot)
    out: list[Decision] = []
    for action in rule.then:
        try:
            if isinstance(action, ActuateAction):
                out.append(SetActuator(action.actuate, action.state, action.for_, rule.id))
            elif isinstance(action, WebhookAction):
                data = render_tree(action.data, context)
                out.append(SendWebhook(action.webhook, action.event, data, rule.id))
            elif isinstance(action, LogAction):
                level = logging.getLevelName(action.level.upper())
                out.append(WriteLog(level, str(render(action.log, context)), rule.id))
        except TemplateError as exc:
            _LOG.error("rule %s: action skipped: %s", rule.id, exc)
    return out
