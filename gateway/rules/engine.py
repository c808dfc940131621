"""The rule engine: an event or a timer, the current states and the clock in; decisions out.

Pure: no I/O, no sleeping, no clock of its own. The same engine runs in the
daemon and in ``gateway test`` scenarios on a virtual clock. Everything it
must remember across a restart (a ``for`` that is counting, a run waiting in
a ``delay``, a ``cooldown``) it hands out as :class:`Schedule` decisions;
the runtime stores those timers and gives them back on start.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.config.rules import (
    AnyCondition,
    AtTrigger,
    Condition,
    DelayAction,
    EveryTrigger,
    HookTrigger,
    MqttTrigger,
    NotCondition,
    Rule,
    SensorCondition,
    SensorTrigger,
    StartupTrigger,
    TemplateCondition,
    TimeCondition,
)
from gateway.events import (
    Event,
    GatewayStarted,
    HookReceived,
    MqttReceived,
    SensorChanged,
    topic_matches,
)
from gateway.rules.context import decide_action, describe, event_vars, iso_time, template_context
from gateway.rules.decisions import (
    Cancel,
    Decision,
    Schedule,
    Snapshot,
)
from gateway.rules.timers import Timer
from gateway.rules.values import equal, in_range, next_local_time, rearmed, trigger_holds
from gateway.templates import TemplateError, render

_LOG = logging.getLogger(__name__)

ENGINE_TIMERS = frozenset({"for", "run", "every", "at", "cooldown", "queued"})
QUEUED_DUE = 221845392000.0  # 9000-01-01: a queued run waits for its turn, not for a time
"""The ``due`` of a ``queued`` timer: such a timer only carries a waiting run
to disk; it never fires, its rule takes it from the queue."""


@dataclass
class Run:
    """One execution of a rule's actions, possibly waiting in a ``delay``."""

    id: str
    rule: str
    index: int
    event: dict[str, Any]


@dataclass
class _RuleState:
    runs: list[Run] = field(default_factory=list)
    queue: list[Run] = field(default_factory=list)  # queued mode: runs waiting their turn
    cooldown_until: float = 0.0


class RuleEngine:
    """Decides which rules fire and what they do; remembers what must be remembered."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = {rule.id: rule for rule in rules}
        self._state = {name: _RuleState() for name in self.rules}
        self._armed: dict[str, bool] = {}  # above/below triggers: may fire on the next crossing
        self._last_value: dict[str, float] = {}  # `changes: N` triggers: value when last fired
        self._pending: dict[str, dict[str, Any]] = {}  # `for` triggers counting: their event
        self._ids = itertools.count(1)
        # which triggers watch which sensor: a reading looks at its own rules only
        self._watching: dict[str, list[tuple[Rule, int, SensorTrigger]]] = {}
        self._startup: list[Rule] = []
        self._hooks: dict[str, list[Rule]] = {}
        self._topics: list[tuple[str, Rule]] = []
        for rule in self.rules.values():
            for i, trigger in enumerate(rule.when):
                if isinstance(trigger, SensorTrigger):
                    self._watching.setdefault(trigger.sensor, []).append((rule, i, trigger))
                elif isinstance(trigger, HookTrigger):
                    self._hooks.setdefault(trigger.hook, []).append(rule)
                elif isinstance(trigger, MqttTrigger):
                    self._topics.append((trigger.mqtt, rule))
            if any(isinstance(t, StartupTrigger) for t in rule.when):
                self._startup.append(rule)

    # ------------------------------------------------------------------ entry points

    def start(self, snapshot: Snapshot, saved: Iterable[Timer]) -> list[Decision]:
        """Take back saved timers (after a restart or reload) and schedule clocks."""
        out: list[Decision] = []
        saved = list(saved)
        numbers = [int(n) for t in saved if (n := t.key.rpartition(":")[2]).isdigit()]
        self._ids = itertools.count(max(numbers, default=0) + 1)  # no id of before is reused
        for timer in sorted(saved, key=lambda t: t.data.get("seq", 0)):
            if timer.kind in ENGINE_TIMERS:
                out.extend(self._restore(timer, snapshot))
        for rule in self.rules.values():  # a queue whose running run is gone moves on
            out.extend(self._next_queued(rule, snapshot))
        for rule in self.rules.values():
            for i, trigger in enumerate(rule.when):
                if isinstance(trigger, EveryTrigger | AtTrigger):
                    out.append(self._next_clock(rule, i, trigger, snapshot))
        return out

    def handle(self, event: Event, snapshot: Snapshot) -> list[Decision]:
        """Every decision of every rule that ``event`` fires, in rule order."""
        out: list[Decision] = []
        if isinstance(event, GatewayStarted):
            for rule in self._startup:
                out.extend(self._trigger(rule, event_vars(event, snapshot), snapshot))
        elif isinstance(event, SensorChanged):
            for rule, index, trigger in self._watching.get(event.sensor, ()):
                out.extend(self._sensor(rule, index, trigger, event, snapshot))
        elif isinstance(event, HookReceived):
            for rule in self._hooks.get(event.hook, ()):
                out.extend(self._trigger(rule, event_vars(event, snapshot), snapshot))
        elif isinstance(event, MqttReceived):
            for pattern, rule in self._topics:
                if topic_matches(pattern, event.topic):
                    out.extend(self._trigger(rule, event_vars(event, snapshot), snapshot))
        return out

    def _new_id(self, rule: Rule) -> str:
        return f"{rule.id}:{next(self._ids)}"

    def watches_hook(self, hook: str) -> bool:
        return hook in self._hooks

    def fire(self, timer: Timer, snapshot: Snapshot) -> list[Decision]:
        """A timer of ours is due."""
        rule = self.rules.get(timer.data.get("rule", ""))
        if rule is None:
            return []
        if timer.kind == "cooldown":
            return []
        if timer.kind == "for":
            event = self._pending.pop(timer.key, None)
            return self._trigger(rule, event, snapshot) if event is not None else []
        if timer.kind == "run":
            state = self._state[rule.id]
            run = next((r for r in state.runs if r.id == timer.key), None)
            if run is None:
                return []
            run.index = int(timer.data["index"])
            return self._continue(rule, run, snapshot)
        index = int(timer.data["trigger"])
        trigger = rule.when[index] if index < len(rule.when) else None
        if not isinstance(trigger, EveryTrigger | AtTrigger):
            return []
        event = {
            "trigger": timer.kind,
            "time": iso_time(snapshot.time, snapshot),
            "source": "clock",
        }
        return [
            self._next_clock(rule, index, trigger, snapshot),
            *self._trigger(rule, event, snapshot),
        ]

    # ------------------------------------------------------------------ triggers

    def _sensor(
        self, rule: Rule, index: int, trigger: SensorTrigger, event: SensorChanged, snap: Snapshot
    ) -> list[Decision]:
        key = f"{rule.id}#{index}"
        if event.previous is not None and equal(event.value, event.previous):
            return []  # a repeated reading is not a change
        if trigger.above is not None or trigger.below is not None:
            crossed, holds = self._level(key, trigger, event)
        elif trigger.to is not None or trigger.from_ is not None:
            holds = trigger.to is None or equal(event.value, trigger.to)
            crossed = holds and (trigger.from_ is None or equal(event.previous, trigger.from_))
        else:
            crossed, holds = self._changed(key, trigger, event), False
        if trigger.for_ is None:
            return self._trigger(rule, event_vars(event, snap), snap) if crossed else []
        if crossed and key not in self._pending:
            self._pending[key] = event_vars(event, snap)
            due = event.time + trigger.for_
            return [
                Schedule(Timer("for", key, due, {"rule": rule.id, "event": self._pending[key]}))
            ]
        if not holds and key in self._pending:
            del self._pending[key]
            _LOG.debug("rule %s: %s no longer holds, `for` cancelled", rule.id, trigger.sensor)
            return [Cancel("for", key)]
        return []

    def _level(self, key: str, trigger: SensorTrigger, event: SensorChanged) -> tuple[bool, bool]:
        """Crossing into above/below (with hysteresis): (fires now, still inside)."""
        inside = in_range(event.value, trigger.above, trigger.below)
        armed = self._armed.get(key)
        if armed is None:  # no crossing is seen from an unknown previous value
            armed = event.previous is not None and not in_range(
                event.previous, trigger.above, trigger.below
            )
        if inside:
            self._armed[key] = False
        elif rearmed(event.value, trigger):
            self._armed[key] = True
        return inside and armed, inside

    def _changed(self, key: str, trigger: SensorTrigger, event: SensorChanged) -> bool:
        step = trigger.changes
        if step is None or isinstance(step, bool):
            return True  # any change, also the first value after an unknown one
        if event.previous is None:
            if isinstance(event.value, int | float) and not isinstance(event.value, bool):
                self._last_value[key] = float(event.value)
            return False
        if not isinstance(event.value, int | float) or isinstance(event.value, bool):
            return False
        last = self._last_value.get(key)
        if last is None:
            prev = event.previous
            last = float(prev) if isinstance(prev, int | float) else float(event.value)
        if abs(float(event.value) - last) >= step:
            self._last_value[key] = float(event.value)
            return True
        return False

    def _next_clock(
        self, rule: Rule, index: int, trigger: EveryTrigger | AtTrigger, snap: Snapshot
    ) -> Schedule:
        now = snap.time
        if isinstance(trigger, EveryTrigger):
            due = (now // trigger.every + 1) * trigger.every
            kind = "every"
        else:
            due = next_local_time(snap.now, trigger.at)
            kind = "at"
        data = {"rule": rule.id, "trigger": index}
        return Schedule(Timer(kind, f"{rule.id}#{index}", due, data, durable=False))

    # ------------------------------------------------------------------ running a rule

    def _trigger(self, rule: Rule, event: dict[str, Any], snap: Snapshot) -> list[Decision]:
        """A trigger fired: check enabled, cooldown, conditions and mode, then run."""
        state = self._state[rule.id]
        if not rule.enabled:
            return []
        if state.cooldown_until > snap.time:
            _LOG.debug("rule %s: in cooldown, not run", rule.id)
            return []
        context = template_context(rule, event, snap)
        if not all(self._holds(c, snap, context, rule) for c in rule.if_):
            _LOG.debug("rule %s: a condition does not hold", rule.id)
            return []
        out: list[Decision] = []
        if state.runs:
            if rule.mode == "single":
                _LOG.warning("rule %s is still running (mode single): trigger ignored", rule.id)
                return []
            if rule.mode == "restart":
                for run in state.runs:
                    out.append(Cancel("run", run.id))
                state.runs.clear()
            elif rule.mode == "queued":
                if len(state.queue) + len(state.runs) >= rule.max_runs:
                    _LOG.warning(
                        "rule %s: %d runs queued already, trigger dropped", rule.id, rule.max_runs
                    )
                else:
                    waiting = Run(self._new_id(rule), rule.id, 0, event)
                    state.queue.append(waiting)
                    data = {
                        "rule": rule.id,
                        "event": event,
                        "seq": int(waiting.id.rpartition(":")[2]),
                    }
                    out.append(Schedule(Timer("queued", waiting.id, QUEUED_DUE, data)))
                return out
            elif len(state.runs) >= rule.max_runs:
                _LOG.warning(
                    "rule %s: %d runs at once already, trigger dropped", rule.id, rule.max_runs
                )
                return out
        if rule.cooldown:
            state.cooldown_until = snap.time + rule.cooldown
            out.append(
                Schedule(Timer("cooldown", rule.id, state.cooldown_until, {"rule": rule.id}))
            )
        _LOG.info("rule %s fired by %s", rule.id, describe(event))
        run = Run(self._new_id(rule), rule.id, 0, event)
        state.runs.append(run)
        out.extend(self._continue(rule, run, snap))
        return out

    def _continue(self, rule: Rule, run: Run, snap: Snapshot) -> list[Decision]:
        """Run actions from ``run.index`` until a delay or the end."""
        context = template_context(rule, run.event, snap)
        out: list[Decision] = []
        for i in range(run.index, len(rule.then)):
            action = rule.then[i]
            if isinstance(action, DelayAction):
                run.index = i + 1
                data = {"rule": rule.id, "index": run.index, "event": run.event}
                out.append(Schedule(Timer("run", run.id, snap.time + action.delay, data)))
                return out
            decision = decide_action(rule, action, context)
            if decision is not None:
                out.append(decision)
        state = self._state[rule.id]
        if run in state.runs:
            state.runs.remove(run)
        out.extend(self._next_queued(rule, snap))
        return out

    def _next_queued(self, rule: Rule, snap: Snapshot) -> list[Decision]:
        """Queued mode: with no run going, the first waiting run starts now."""
        state = self._state[rule.id]
        if not state.queue or state.runs:
            return []
        nxt = state.queue.pop(0)
        state.runs.append(nxt)
        return [Cancel("queued", nxt.id), *self._continue(rule, nxt, snap)]

    def _holds(
        self, condition: Condition, snap: Snapshot, context: dict[str, Any], rule: Rule
    ) -> bool:
        if isinstance(condition, TimeCondition):
            return condition.time.contains(snap.now)
        if isinstance(condition, AnyCondition):
            return any(self._holds(c, snap, context, rule) for c in condition.any)
        if isinstance(condition, NotCondition):
            inner = condition.not_ if isinstance(condition.not_, list) else [condition.not_]
            return not any(self._holds(c, snap, context, rule) for c in inner)
        if isinstance(condition, TemplateCondition):
            try:
                return bool(render(condition.template, context))
            except TemplateError as exc:
                _LOG.error("rule %s: condition counted as false: %s", rule.id, exc)
                return False
        assert isinstance(condition, SensorCondition)
        value = snap.sensors.get(condition.sensor)
        if value is None:
            return False
        if condition.is_ is not None and not equal(value, condition.is_):
            return False
        if condition.above is not None or condition.below is not None:
            return in_range(value, condition.above, condition.below)
        return True

    # ------------------------------------------------------------------ restoring

    def _restore(self, timer: Timer, snap: Snapshot) -> list[Decision]:
        rule = self.rules.get(timer.data.get("rule", ""))
        if rule is None:
            return [Cancel(timer.kind, timer.key)]  # the rule is gone (after a reload)
        if timer.kind == "cooldown":
            self._state[rule.id].cooldown_until = timer.due
        elif timer.kind == "queued":
            self._state[rule.id].queue.append(Run(timer.key, rule.id, 0, timer.data["event"]))
        elif timer.kind == "run":
            index = int(timer.data.get("index", 0))
            if index >= len(rule.then):
                return [Cancel(timer.kind, timer.key)]
            self._state[rule.id].runs.append(Run(timer.key, rule.id, index, timer.data["event"]))
        elif timer.kind == "for":
            index = int(timer.key.rpartition("#")[2] or -1)
            trigger = rule.when[index] if 0 <= index < len(rule.when) else None
            if not isinstance(trigger, SensorTrigger) or trigger.for_ is None:
                return [Cancel(timer.kind, timer.key)]
            value = snap.sensors.get(trigger.sensor)
            if value is not None and not trigger_holds(trigger, value):
                _LOG.info(
                    "rule %s: %s changed while stopped, `for` cancelled", rule.id, trigger.sensor
                )
                return [Cancel(timer.kind, timer.key)]
            self._pending[timer.key] = timer.data["event"]
            self._armed[timer.key] = False
        else:  # every/at: scheduled afresh by start()
            return [Cancel(timer.kind, timer.key)]
        return []


# ---------------------------------------------------------------------- helpers
