"""Applies the engine's decisions: actuators, timers, the outbox, the log.

The runtime keeps the current sensor values, asks the pure engine what to
do for each event, and does it through two small interfaces, so the daemon
(real GPIO, SQLite outbox) and rule tests (memory, virtual clock) share it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import assert_never

from gateway import safejson
from gateway.config.models import GatewayConfig, GpioSensor, VirtualSensor
from gateway.events import UNAVAILABLE, Event, GatewayStarted, SensorChanged, Value
from gateway.interfaces import Actuators, Links, NoLinks, Observer, WebhookSink
from gateway.ratelog import KeyedLog
from gateway.rules.decisions import (
    Cancel,
    Decision,
    Dequeue,
    Enqueue,
    PublishMqtt,
    Schedule,
    SendWebhook,
    SetActuator,
    Snapshot,
    WriteLog,
    WriteSerial,
)
from gateway.rules.engine import RuleEngine
from gateway.rules.filters import FilterChain
from gateway.rules.switching import Switching
from gateway.rules.timerkinds import ACTUATOR_KINDS, Switch
from gateway.rules.timers import TimerTable
from gateway.rules.values import equal

_LOG = logging.getLogger(__name__)


class Runtime:
    """Sensor values, the engine, and the timers of one loaded config."""

    def __init__(
        self,
        config: GatewayConfig,
        actuators: Actuators,
        webhooks: WebhookSink,
        timers: TimerTable,
        clock: Callable[[], float],
        tz: dt.tzinfo | None = None,
        links: Links | None = None,
        on_timers_changed: Callable[[], None] | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.config = config
        self.actuators = actuators
        self.webhooks = webhooks
        self.timers = timers
        self.clock = clock
        self._say = KeyedLog(_LOG)  # a rule's "queued" lines: one a second at most
        self.tz = tz
        self.links: Links = links or NoLinks()
        self.engine = RuleEngine(list(config.rules))
        self.sensors: dict[str, Value] = {}
        self.updated: dict[str, float] = {}  # when each sensor last read (also the same value)
        self.changed: dict[str, float] = {}  # when each sensor's value last changed
        self.filters = {
            name: FilterChain(sensor.filters)
            for name, sensor in config.sensors.items()
            if sensor.filters
        }
        self._held_from: dict[str, str] = {}  # the source of a reading a filter holds
        self.unavailable: set[str] = set()  # input gone, or no reading within stale_after
        self.members: dict[str, str] = {}  # members of split MQTT sensors -> their sensor
        self._stale_after = {
            name: sensor.stale_after
            for name, sensor in config.sensors.items()
            if sensor.stale_after is not None
        }
        self._since = clock()  # a sensor never read is stale this long after the start
        for name, sensor in config.sensors.items():
            if isinstance(sensor, VirtualSensor) and sensor.initial is not None:
                self.sensors[name] = sensor.initial
        self.observers = observers
        self.switching = Switching(config, actuators, timers, clock, self.sensors, observers)
        self.timers.keep_only(set(config.actuators))
        self.on_timers_changed: Callable[[], None] = on_timers_changed or (lambda: None)

    # ------------------------------------------------------------------ inputs

    def start(self, startup: bool = True) -> None:
        """Take back saved timers, schedule clock triggers, fire ``startup`` rules.

        Call once the inputs have reported their first values: a saved
        ``for`` whose sensor now reads otherwise is cancelled.
        """
        with self.timers.batch():
            self._apply_all(self.engine.start(self.snapshot(), self.timers, self.timers.queued()))
            for hold in list(self.timers.holds.values()):  # a sensor that cleared meanwhile
                self.switching.follow(hold, self.sensors.get(hold.sensor))
            if startup:  # not after a reload
                self.handle(GatewayStarted(self.clock()))
        self.on_timers_changed()

    def carry_on(self, old: Runtime) -> None:
        """After a reload: what ``old`` knew (a reload is not a new reading), its
        counters, min_on/min_off windows and freshness. GPIO pins were read anew."""
        for member, group in old.members.items():
            self._join(member, group)
        for name, value in old.sensors.items():
            sensor = self.config.sensors.get(self.members.get(name, name))
            if sensor is not None and not isinstance(sensor, GpioSensor):
                self.sensors[name] = value
                if name in old.unavailable:
                    self.unavailable.add(name)
        self.engine.fired.update(old.engine.fired)
        self.engine.suppressed.update(old.engine.suppressed)
        self.engine.last_triggered.update(old.engine.last_triggered)
        self.switching.switched.update(old.switching.switched)
        self.updated.update(old.updated)
        self.changed.update(old.changed)
        self._since = old._since

    def sensors_known(self) -> list[str]:
        """The configured sensors, then the members of split ones seen so far."""
        return [*self.config.sensors, *self.members]

    def known(self, values: Mapping[str, Value]) -> None:
        """Values read as the inputs opened (GPIO pins): no event, but read now."""
        now = self.clock()
        for name, value in values.items():
            self.sensors[name] = value
            self.updated[name] = self.changed[name] = now

    def reading(
        self, sensor: str, value: Value, source: str, group: str | None = None
    ) -> SensorChanged | None:
        """A new reading of ``sensor``; rules run when it differs from the last one.

        ``group``: the split MQTT sensor ``sensor`` is a member of (it takes the
        group's filters and ``stale_after``, and triggers on the group fire)."""
        if not safejson.finite(value):  # inputs refuse these; this is the last line
            _LOG.warning("sensor %s: %r is not a reading; ignored", sensor, value)
            return None
        if group is not None and sensor not in self.members:
            self._join(sensor, group)
        chain = self.filters.get(sensor)
        if chain is not None:
            filtered = chain(value, self.clock())
            if filtered is None:  # dropped (throttle, delta) or held (delayed_on, settle)
                if chain.due() is not None:
                    self._held_from[sensor] = source
                    self.on_timers_changed()  # the timer loop lets it through when due
                return None
            value = filtered
        return self._accept(sensor, value, source)

    def _join(self, member: str, group: str) -> None:
        if member in self.config.sensors or group not in self.config.sensors:
            return  # a configured sensor's name is never a member's
        self.members[member] = group
        config = self.config.sensors[group]
        if config.filters:
            self.filters[member] = FilterChain(config.filters)
        if config.stale_after is not None:
            self._stale_after[member] = config.stale_after

    def lost(self, sensors: list[str], why: str) -> None:
        """``sensors`` are unavailable (their input disconnected, or no reading within
        ``stale_after``): rules see the change, until a reading comes again. A split
        sensor's members are, all of them."""
        members = [m for m, group in self.members.items() if group in sensors]
        for sensor in [*sensors, *members]:
            if sensor in self.unavailable or sensor not in self.sensors_known():
                continue
            self.unavailable.add(sensor)
            if sensor in self.filters:  # what it held or averaged is from before
                config = self.config.sensors[self.members.get(sensor, sensor)]
                self.filters[sensor] = FilterChain(config.filters)
            _LOG.warning("sensor %s: unavailable (%s)", sensor, why)
            self._change(sensor, UNAVAILABLE, self.sensors.get(sensor), self.clock(), why)

    def _accept(self, sensor: str, value: Value, source: str) -> SensorChanged | None:
        previous = self.sensors.get(sensor)
        now = self.updated[sensor] = self.clock()
        if sensor in self.unavailable:
            self.unavailable.discard(sensor)
            _LOG.info("sensor %s: available again (%s)", sensor, source)
            if sensor in self._stale_after:
                self.on_timers_changed()  # it has a deadline again: the loop's wait may be longer
        if previous is not None and (  # the one place repeats stop (as rules compare)
            previous == value if type(previous) is type(value) else equal(value, previous)
        ):
            return None
        return self._change(sensor, value, previous, now, source)

    def _change(
        self, sensor: str, value: Value, previous: Value | None, now: float, source: str
    ) -> SensorChanged:
        self.sensors[sensor] = value
        self.changed[sensor] = now
        event = SensorChanged(sensor, value, previous, now, source, self.members.get(sensor))
        for observer in self.observers:
            observer.sensor_changed(sensor, value)
        _LOG.debug("sensor %s: %r -> %r (%s)", sensor, previous, value, source)
        held = [h for h in self.timers.holds.values() if h.sensor == sensor]
        if held:
            with self.timers.batch():
                for hold in held:
                    self.switching.follow(hold, value)
                self.handle(event)
            self.on_timers_changed()
        else:
            self.handle(event)
        return event

    def handle(self, event: Event) -> None:
        """Run every rule that ``event`` fires (their timers saved once, together)."""
        if isinstance(event, SensorChanged) and not self.engine.watches_sensor(
            event.sensor, event.group
        ):
            return  # no rule watches it: no snapshot to build
        decisions = self.engine.handle(event, self.snapshot())
        if decisions:
            with self.timers.batch():
                self._apply_all(decisions)
        elif self.engine.traced:
            self._hand_on_traces()

    def run_now(self, rule: str, who: str) -> None:
        """Run ``rule``'s actions now (the API's "run"): no conditions, no cooldown."""
        with self.timers.batch():
            self._apply_all(self.engine.run_now(rule, self.snapshot(), who))

    def _apply_all(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            self._apply(decision)
        if self.engine.traced:
            self._hand_on_traces()

    def _hand_on_traces(self) -> None:
        """Traces whose actions are carried out, to the observers (history, the stream)."""
        for trace in self.engine.take_traces():
            failed = next((step for step in trace.steps if not step.ok), None)
            if trace.result == "finished" and failed is not None:
                trace.result, trace.why = "error", f"{failed.action}: {failed.outcome}"
            for observer in self.observers:
                observer.rule_traced(trace)

    def snapshot(self) -> Snapshot:
        now = dt.datetime.fromtimestamp(self.clock(), self.tz).astimezone(self.tz)
        states = {name: self.actuators.get(name) for name in self.actuators.names()}
        return Snapshot(self.sensors, states, now, self.config.gateway.name)

    # ------------------------------------------------------------------ actions

    def actuate(
        self,
        name: str,
        state: bool | float | str,
        revert_after: float | None,
        who: str,
        hold_while: str | None = None,
    ) -> bool | float:
        """:meth:`Switching.switch`, its timers (the switch-back, ``max_on``) saved
        once, together; the new state. The timer loop is woken only for a timer set
        (one cancelled cannot come due sooner than it waits): a plain switch, every API
        actuation without ``for`` among them, costs it no turn."""
        sets = self.timers.sets
        with self.timers.batch():
            new = self.switching.switch(name, state, revert_after, who, hold_while)
        if self.timers.sets != sets:
            self.on_timers_changed()
        return new

    def _apply(self, decision: Decision) -> None:
        step = getattr(decision, "step", None)
        try:
            outcome = self._carry_out(decision)
        except Exception as exc:  # one failed action must not stop the others or the daemon
            rule = getattr(decision, "rule", "?")
            _LOG.exception("rule %s: action %s failed", rule, type(decision).__name__)
            outcome = f"failed: {type(exc).__name__}: {exc}"
            if step is not None:
                step.ok = False
        if step is not None and outcome:
            step.outcome = outcome

    def _carry_out(self, decision: Decision) -> str:
        """Does it; what came of it, for the trace."""
        match decision:
            case SetActuator():
                cause = f" ({decision.cause})" if decision.cause else ""
                who = f"rule {decision.rule}{cause}"
                name, switching = decision.actuator, self.switching
                before = self.actuators.get(name)
                new = self.actuate(
                    name, decision.state, decision.revert_after, who, decision.hold_while
                )
                return switch_outcome(name, before, switching.wanted, new, switching.refused)
            case SendWebhook():
                msg_id = self.webhooks.submit(decision.endpoint, decision.event, decision.data)
                self._say.info(
                    decision.rule,
                    self.clock(),
                    "rule %s: webhook %s queued for %s as %s",
                    decision.rule,
                    decision.event,
                    decision.endpoint,
                    msg_id,
                )
                return f"queued as {msg_id}"
            case WriteLog():
                _LOG.log(decision.level, "rule %s: %s", decision.rule, decision.message)
                return f"logged: {decision.message[:200]}"
            case PublishMqtt():
                self.links.publish(decision.topic, decision.payload, decision.qos, decision.retain)
                return f"published to {decision.topic}"
            case WriteSerial():
                self.links.write_serial(decision.port, decision.data)
                return f"written to {decision.port}"
            case Schedule():
                self.timers.set(decision.timer)
                self.on_timers_changed()
            case Cancel():
                self.timers.cancel(decision.kind, decision.key)
            case Enqueue():
                self.timers.enqueue(decision.run)
            case Dequeue():
                self.timers.dequeue(decision.run)
            case _:
                assert_never(decision)
        return ""

    # ------------------------------------------------------------------ timers

    def next_due(self) -> float | None:
        """The next timer or held reading (a timed filter) due."""
        dues = [chain.due() for chain in self.filters.values()]
        dues += [self._stale_at(name) for name in self._stale_after]
        return min((d for d in (self.timers.next_due(), *dues) if d is not None), default=None)

    def _stale_at(self, sensor: str) -> float | None:
        if sensor in self.unavailable:
            return None
        return self.updated.get(sensor, self._since) + self._stale_after[sensor]

    def run_due(self) -> None:
        """Fire every timer whose time has come (late ones at once), and let
        through the readings timed filters held."""
        now = self.clock()
        for sensor, chain in self.filters.items():
            held = chain.due()
            if held is not None and held <= now:
                source = self._held_from.get(sensor, "filter")
                for value in chain.release(now):
                    self._accept(sensor, value, source)
        for sensor, after in self._stale_after.items():
            stale = self._stale_at(sensor)
            if stale is not None and stale <= now:
                self.lost([sensor], f"no reading for {after:g}s")
        with self.timers.batch():
            while due := self.timers.pop_due(now):
                for timer in due:
                    if timer.kind in ACTUATOR_KINDS and isinstance(timer.payload, Switch):
                        self.switching.fire(timer, timer.payload, now)
                    else:
                        self._apply_all(self.engine.fire(timer, self.snapshot()))


def switch_outcome(
    name: str, before: Value, target: bool | float, new: Value, refused: str | None
) -> str:
    """What a rule's switch did, as its trace says it."""
    if refused is not None:
        return f"refused: {name} {refused}"
    shown = ("on" if new else "off") if isinstance(new, bool) else f"at {new:g}"
    if new == before and new == target:
        return f"already {shown}"
    if new == target:
        return f"switched {shown}"
    return "deferred by min_on/min_off: it switches later"
