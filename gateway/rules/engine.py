"""The rule engine: an event or a timer, the current states and the clock in; decisions out.

Pure: no I/O, no sleeping, no clock of its own. The same engine runs in the
daemon and in ``gateway test`` scenarios on a virtual clock. Everything it
must remember across a restart (a ``for`` that is counting, a run waiting in
a ``delay``, a ``cooldown``) it hands out as :class:`Schedule` decisions;
the runtime stores those timers and gives them back on start.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections import Counter
from collections.abc import Iterable
from typing import Any, assert_never

from gateway.config.actions import DelayAction
from gateway.config.rules import (
    AtTrigger,
    EveryTrigger,
    HookTrigger,
    MqttTrigger,
    Rule,
    SensorTrigger,
    StartupTrigger,
)
from gateway.events import (
    Event,
    GatewayStarted,
    HookReceived,
    MqttReceived,
    SensorChanged,
    topic_matches,
)
from gateway.ratelog import KeyedLog
from gateway.rules.conditions import checked, shown
from gateway.rules.context import (
    action_label,
    decide_action,
    describe,
    event_vars,
    iso_time,
    template_context,
)
from gateway.rules.decisions import Cancel, Decision, Dequeue, Enqueue, Schedule, Snapshot
from gateway.rules.runs import RuleState, Run, next_clock, restore
from gateway.rules.timerkinds import (
    QueuedRun,
    Step,
    Timer,
    TimerKind,
    run_id,
    run_number,
    trigger_key,
)
from gateway.rules.traces import Trace, TraceStep
from gateway.rules.values import (
    changed_enough,
    clicked,
    crossing,
    equal,
)

_LOG = logging.getLogger(__name__)


class RuleEngine:
    """Decides which rules fire and what they do; remembers what must be remembered."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = {rule.id: rule for rule in rules}
        self._state = {name: RuleState() for name in self.rules}
        self._armed: dict[str, bool] = {}  # above/below triggers: may fire on the next crossing
        self._last_value: dict[str, float] = {}  # `changes: N` triggers: value when last fired
        self._pending: dict[str, dict[str, Any]] = {}  # `for` triggers counting: their event
        self._pressed: dict[str, float] = {}  # click gestures: when the press began
        self._clicked: dict[str, float] = {}  # double clicks: when the first click ended
        self._ids = itertools.count(1)
        self.fired: Counter[str] = Counter()  # runs started, by rule (for /metrics)
        self._say = KeyedLog(_LOG)  # a line a second per rule at most: traces have every run
        self.suppressed: Counter[tuple[str, str]] = Counter()  # (rule, why) not run
        self.last_triggered: dict[str, float] = {}  # when each rule last started a run
        self.disabled = {r.id for r in self.rules.values() if not r.enabled}  # or by the API
        self.traced: list[Trace] = []  # traces that changed, for the runtime to hand on
        self._open: dict[str, Trace] = {}  # traces of runs going, waiting or queued, by run
        # which triggers watch which sensor: a reading looks at its own rules only
        self._watching: dict[str, list[tuple[Rule, int, SensorTrigger]]] = {}
        self._startup: list[Rule] = []
        self._labels = {r.id: [action_label(a) for a in r.then] for r in self.rules.values()}
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

    def start(
        self, snapshot: Snapshot, saved: Iterable[Timer], queued: Iterable[QueuedRun] = ()
    ) -> list[Decision]:
        """Take back saved timers and queued runs (a restart, a reload); schedule clocks."""
        out: list[Decision] = []
        saved, queued = list(saved), list(queued)
        runs = [t.key for t in saved if t.kind is TimerKind.RUN] + [r.id for r in queued]
        self._ids = itertools.count(max(map(run_number, runs), default=0) + 1)  # none reused
        for timer in saved:
            out.extend(
                restore(timer, snapshot, self.rules, self._state, self._pending, self._armed)
            )
        for waiting in queued:  # oldest first
            if waiting.rule in self.rules:
                self._state[waiting.rule].queue.append(
                    Run(waiting.id, waiting.rule, 0, waiting.event)
                )
            else:
                out.append(Dequeue(waiting.id))  # the rule is gone (after a reload)
        for rule in self.rules.values():  # a queue whose running run is gone moves on
            out.extend(self._next_queued(rule, snapshot))
        for rule in self.rules.values():
            for i, trigger in enumerate(rule.when):
                if isinstance(trigger, EveryTrigger | AtTrigger):
                    out.append(next_clock(rule, i, trigger, snapshot))
        return out

    def handle(self, event: Event, snapshot: Snapshot) -> list[Decision]:
        """Every decision of every rule that ``event`` fires, in rule order."""
        out: list[Decision] = []
        match event:
            case SensorChanged():
                group = self._watching.get(event.group, []) if event.group else []  # split
                for rule, index, trigger in [*self._watching.get(event.sensor, ()), *group]:
                    out.extend(self._sensor(rule, index, trigger, event, snapshot))
                return out
            case GatewayStarted():
                rules = self._startup
            case HookReceived():
                rules = self._hooks.get(event.hook, [])
            case MqttReceived():
                rules = [
                    rule for pattern, rule in self._topics if topic_matches(pattern, event.topic)
                ]
            case _:
                assert_never(event)
        for rule in rules:
            out.extend(self._trigger(rule, event_vars(event, snapshot), snapshot))
        return out

    def runs(self, rule: str) -> tuple[int, int]:
        """Runs of ``rule`` going (or waiting in a delay), and waiting their turn."""
        state = self._state[rule]
        return len(state.runs), len(state.queue)

    def watches_hook(self, hook: str) -> bool:
        return hook in self._hooks

    def watches_sensor(self, sensor: str, group: str | None) -> bool:
        return sensor in self._watching or group in self._watching

    def fire(self, timer: Timer, snapshot: Snapshot) -> list[Decision]:
        """A timer of ours is due."""
        step = timer.payload
        rule = self.rules.get(step.rule) if isinstance(step, Step) else None
        if rule is None or not isinstance(step, Step):
            return []
        match timer.kind:
            case TimerKind.COOLDOWN | TimerKind.REVERT | TimerKind.MAX_ON | TimerKind.DEFER:
                return []
            case TimerKind.FOR:
                event = self._pending.pop(timer.key, None)
                return self._trigger(rule, event, snapshot) if event is not None else []
            case TimerKind.RUN:
                state = self._state[rule.id]
                run = next((r for r in state.runs if r.id == timer.key), None)
                if run is None:
                    return []
                run.index = step.index
                return self._continue(rule, run, snapshot)
            case TimerKind.EVERY | TimerKind.AT:
                trigger = rule.when[step.index] if step.index < len(rule.when) else None
                if not isinstance(trigger, EveryTrigger | AtTrigger):
                    return []
                event = {
                    "trigger": str(timer.kind),
                    "time": iso_time(snapshot.time, snapshot),
                    "source": "clock",
                }
                return [
                    next_clock(rule, step.index, trigger, snapshot),
                    *self._trigger(rule, event, snapshot),
                ]
            case _:
                assert_never(timer.kind)

    # ------------------------------------------------------------------ triggers

    def _sensor(
        self, rule: Rule, index: int, trigger: SensorTrigger, event: SensorChanged, snap: Snapshot
    ) -> list[Decision]:
        key = trigger_key(rule.id, index)
        if event.sensor != trigger.sensor:  # a member of a split sensor: its own state
            key = f"{key}@{event.sensor}"
        if trigger.gesture in ("click", "double_click"):
            clicks = self._pressed, self._clicked
            fires = clicked(clicks, key, trigger, event.value, event.time)
            return self._trigger(rule, event_vars(event, snap), snap) if fires else []
        if trigger.above is not None or trigger.below is not None:
            crossed, holds = crossing(self._armed, key, trigger, event.value, event.previous)
        elif trigger.to is not None or trigger.from_ is not None:
            holds = trigger.to is None or equal(event.value, trigger.to)
            crossed = holds and (trigger.from_ is None or equal(event.previous, trigger.from_))
        else:
            crossed, holds = (
                changed_enough(self._last_value, key, trigger, event.value, event.previous),
                False,
            )
        if trigger.for_ is None:
            return self._trigger(rule, event_vars(event, snap), snap) if crossed else []
        if crossed and key not in self._pending:
            self._pending[key] = event_vars(event, snap)
            due = event.time + trigger.for_
            return [
                Schedule(Timer(TimerKind.FOR, key, due, Step(rule.id, index, self._pending[key])))
            ]
        if not holds and key in self._pending:
            del self._pending[key]
            _LOG.debug("rule %s: %s no longer holds, `for` cancelled", rule.id, trigger.sensor)
            return [Cancel(TimerKind.FOR, key)]
        return []

    # ------------------------------------------------------------------ running a rule

    def run_now(self, rule_id: str, snap: Snapshot, who: str) -> list[Decision]:
        """Run a rule's actions now, as asked from outside (no conditions, no cooldown;
        its mode still holds)."""
        rule = self.rules[rule_id]
        event: dict[str, Any] = {"trigger": "manual", "time": iso_time(snap.time, snap)}
        sensor = next((t.sensor for t in rule.when if isinstance(t, SensorTrigger)), None)
        if sensor is not None:  # its templates see the sensor as it reads now
            value = snap.sensors.get(sensor)
            event |= {"sensor": sensor, "group": None, "value": value, "previous": value}
        return self._trigger(rule, event | {"source": who}, snap, who)

    def take_traces(self) -> list[Trace]:
        """The traces that changed since the last call (each once, however often)."""
        traced, self.traced = list(dict.fromkeys(self.traced)), []
        return traced

    def _trigger(
        self, rule: Rule, event: dict[str, Any], snap: Snapshot, who: str | None = None
    ) -> list[Decision]:
        """A trigger fired: check enabled, cooldown, conditions and mode, then run."""
        state = self._state[rule.id]
        if who is None and rule.id in self.disabled:
            return []
        trace = Trace(
            run_id(rule.id, next(self._ids)),
            rule.id,
            describe(event),
            snap.time,
            event,  # summarized when it is saved or shown (most traces never are)
            who=who,
        )
        context = template_context(rule, event, snap)
        if who is None:
            if state.cooldown_until > snap.time:
                until = dt.datetime.fromtimestamp(state.cooldown_until, snap.now.tzinfo)
                why = f"in cooldown until {until:%H:%M:%S}"
                return self._suppressed(trace, "cooldown", why, snap)
            failed, trace.conditions = checked(rule, snap, context)
            if failed is not None:
                why = f"condition {failed + 1} does not hold: {shown(rule.if_[failed], snap)}"
                return self._suppressed(trace, "condition", why, snap)
        out: list[Decision] = []
        if state.runs:
            if rule.mode == "single":
                _LOG.warning("rule %s is still running (mode single): trigger ignored", rule.id)
                return self._suppressed(trace, "running", "still running (mode single)", snap)
            if rule.mode == "restart":
                for run in state.runs:
                    out.append(Cancel(TimerKind.RUN, run.id))
                    if (old := self._open.pop(run.id, None)) is not None:
                        old.end("cancelled", snap.time, "a new trigger restarted it (mode restart)")
                        self.traced.append(old)
                state.runs.clear()
            elif rule.mode == "queued":
                if len(state.queue) + len(state.runs) >= rule.max_runs:
                    _LOG.warning(
                        "rule %s: %d runs queued already, trigger dropped", rule.id, rule.max_runs
                    )
                    why = f"{rule.max_runs} runs queued already (max_runs)"
                    return [*out, *self._suppressed(trace, "running", why, snap)]
                waiting = Run(trace.id, rule.id, 0, event)
                state.queue.append(waiting)
                trace.result, trace.why = "queued", "waiting for the run before it (mode queued)"
                self._open[trace.id] = trace
                self.traced.append(trace)
                out.append(Enqueue(QueuedRun(waiting.id, rule.id, event)))
                return out
            elif len(state.runs) >= rule.max_runs:
                _LOG.warning(
                    "rule %s: %d runs at once already, trigger dropped", rule.id, rule.max_runs
                )
                why = f"{rule.max_runs} runs at once already (max_runs)"
                return [*out, *self._suppressed(trace, "running", why, snap)]
        if rule.cooldown:
            state.cooldown_until = snap.time + rule.cooldown
            cooldown = Timer(TimerKind.COOLDOWN, rule.id, state.cooldown_until, Step(rule.id))
            out.append(Schedule(cooldown))
        self._say.info(rule.id, snap.time, "rule %s fired by %s", rule.id, trace.trigger)
        self.fired[rule.id] += 1
        self.last_triggered[rule.id] = snap.time
        run = Run(trace.id, rule.id, 0, event)
        state.runs.append(run)
        self._open[run.id] = trace
        out.extend(self._continue(rule, run, snap, context))
        return out

    def _continue(
        self, rule: Rule, run: Run, snap: Snapshot, context: dict[str, Any] | None = None
    ) -> list[Decision]:
        """Run actions from ``run.index`` until a delay or the end."""
        if context is None:
            context = template_context(rule, run.event, snap)
        trace = self._open.get(run.id)
        if trace is None:  # a run taken back after a restart: its trace so far is saved
            trace = Trace(run.id, rule.id, describe(run.event), snap.time, resumed=True)
            trace.event = run.event
            self._open[run.id] = trace
        trace.result, trace.why = "running", ""
        self.traced.append(trace)
        out: list[Decision] = []
        for i in range(run.index, len(rule.then)):
            action = rule.then[i]
            if isinstance(action, DelayAction):
                run.index = i + 1
                step = Step(rule.id, run.index, run.event)
                due = snap.time + action.delay
                until = f"{dt.datetime.fromtimestamp(due, snap.now.tzinfo):%H:%M:%S}"
                label = self._labels[rule.id][i]
                trace.steps.append(TraceStep(label, snap.time, f"until {until}"))
                trace.result, trace.why = "waiting", f"in a delay until {until}"
                out.append(Schedule(Timer(TimerKind.RUN, run.id, due, step)))
                return out
            traced = TraceStep(self._labels[rule.id][i], snap.time)
            trace.steps.append(traced)
            decision = decide_action(rule, action, context, traced)
            if decision is not None:
                out.append(decision)
        trace.end("finished", snap.time)
        del self._open[run.id]
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
        return [Dequeue(nxt.id), *self._continue(rule, nxt, snap)]

    def _suppressed(self, trace: Trace, reason: str, why: str, snap: Snapshot) -> list[Decision]:
        """A trigger that did not run its rule: counted (by reason), traced, and said
        at INFO (``running``: by the caller, at WARNING)."""
        self.suppressed[(trace.rule, reason)] += 1
        if reason != "running":
            self._say.info(
                f"{trace.rule}:{reason}", snap.time, "rule %s: not run: %s", trace.rule, why
            )
        trace.end("ignored" if reason == "running" else "suppressed", snap.time, why)
        self.traced.append(trace)
        return []
