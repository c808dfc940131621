"""A rule's runs, what the engine takes back of them after a restart or a reload,
and the clocks it schedules."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, assert_never

from gateway.config.rules import AtTrigger, EveryTrigger, Rule, SensorTrigger
from gateway.rules.decisions import Cancel, Decision, Schedule, Snapshot
from gateway.rules.timerkinds import Step, Timer, TimerKind, trigger_key
from gateway.rules.values import next_local_time, trigger_holds

_LOG = logging.getLogger(__name__)


@dataclass
class Run:
    """One execution of a rule's actions, possibly waiting in a ``delay``."""

    id: str
    rule: str
    index: int
    event: dict[str, Any]


@dataclass
class RuleState:
    runs: list[Run] = field(default_factory=list)
    queue: list[Run] = field(default_factory=list)  # queued mode: runs waiting their turn
    cooldown_until: float = 0.0


def next_clock(
    rule: Rule, index: int, trigger: EveryTrigger | AtTrigger, snap: Snapshot
) -> Schedule:
    """The next time an ``every`` or ``at`` trigger fires."""
    now = snap.time
    if isinstance(trigger, EveryTrigger):
        due = (now // trigger.every + 1) * trigger.every
        kind = TimerKind.EVERY
    else:
        due = next_local_time(snap.now, trigger.at)
        kind = TimerKind.AT
    key = trigger_key(rule.id, index)
    return Schedule(Timer(kind, key, due, Step(rule.id, index), durable=False))


def restore(
    timer: Timer,
    snap: Snapshot,
    rules: dict[str, Rule],
    states: dict[str, RuleState],
    pending: dict[str, dict[str, Any]],
    armed: dict[str, bool],
) -> list[Decision]:
    """Take back one saved timer of a rule (a restart, a reload): its run, cooldown or
    counting ``for``; a cancel for what no longer applies."""
    step = timer.payload
    if not isinstance(step, Step):
        return []  # an actuator's timer: the runtime's
    rule = rules.get(step.rule)
    if rule is None:
        return [Cancel(timer.kind, timer.key)]  # the rule is gone (after a reload)
    match timer.kind:
        case TimerKind.COOLDOWN:
            states[rule.id].cooldown_until = timer.due
        case TimerKind.RUN:
            if step.index > len(rule.then) or step.event is None:  # == : the last delay
                return [Cancel(timer.kind, timer.key)]
            states[rule.id].runs.append(Run(timer.key, rule.id, step.index, step.event))
        case TimerKind.FOR:
            index = step.index
            trigger = rule.when[index] if 0 <= index < len(rule.when) else None
            if not isinstance(trigger, SensorTrigger) or trigger.for_ is None:
                return [Cancel(timer.kind, timer.key)]
            sensor = (step.event or {}).get("sensor", trigger.sensor)  # a member's own
            value = snap.sensors.get(sensor)
            if value is not None and not trigger_holds(trigger, value):
                _LOG.info("rule %s: %s changed while stopped, `for` cancelled", rule.id, sensor)
                return [Cancel(timer.kind, timer.key)]
            pending[timer.key] = step.event or {}
            armed[timer.key] = False
        case TimerKind.EVERY | TimerKind.AT:  # scheduled afresh by start()
            return [Cancel(timer.kind, timer.key)]
        case TimerKind.REVERT | TimerKind.MAX_ON | TimerKind.DEFER:
            return []
        case _:
            assert_never(timer.kind)
    return []
