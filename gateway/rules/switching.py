"""Switching actuators: the audit line, ``for`` and ``while``, ``max_on``, and the
protections of what they switch (interlocks, min_on/min_off, max_switches).

One place for every switch, whoever asks (a rule, the API, a timer), so the
same limits and the same log line apply to all of them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from gateway.config.models import GatewayConfig
from gateway.events import Value
from gateway.interfaces import Actuators, Observer
from gateway.ratelog import RateLimitedLog
from gateway.rules.timerkinds import Hold, Switch, Timer, TimerKind
from gateway.rules.timers import TimerTable
from gateway.rules.values import switched_state

_LOG = logging.getLogger(__name__)
_LIMITED = RateLimitedLog(_LOG)


class Switching:
    """The actuators of one loaded config, switched with their limits."""

    def __init__(
        self,
        config: GatewayConfig,
        actuators: Actuators,
        timers: TimerTable,
        clock: Callable[[], float],
        sensors: Mapping[str, Value],
        observers: Sequence[Observer] = (),
    ) -> None:
        self.observers = observers
        self.wanted: bool | float = False  # what the last switch asked for
        self.refused: str | None = None  # why the last switch was refused (None: it was not)
        self.config = config
        self.actuators = actuators
        self.timers = timers
        self.clock = clock
        self.sensors = sensors  # the runtime's values, for ``while`` holds
        self.switched: dict[str, float] = {}  # when each actuator last changed (min_on/off)
        self._switches: dict[str, deque[float]] = {}  # recent changes (max_switches)

    def _set(self, name: str, state: bool | float, who: str) -> None:
        self.actuators.set(name, state)
        self.switched[name] = self.clock()
        for observer in self.observers:
            observer.actuator_switched(name, state, who)

    def follow(self, hold: Hold, value: Value | None) -> None:
        """A held actuator follows its sensor: held while on, switched back ``delay``
        after it goes off (a new ``on`` before then holds it again)."""
        if value is True:
            self.timers.cancel(TimerKind.REVERT, hold.actuator)
        elif value is not None and self.timers.get(TimerKind.REVERT, hold.actuator) is None:
            was = self.actuators.get(hold.actuator)
            due = self.clock() + hold.delay
            switch = Switch(hold.back, f"{hold.by}, {hold.sensor} off", was)
            self.timers.set(Timer(TimerKind.REVERT, hold.actuator, due, switch))

    def switch(
        self,
        name: str,
        state: bool | float | str,
        revert_after: float | None,
        who: str,
        hold_while: str | None = None,
    ) -> bool | float:
        """Switch an actuator (``state``: on/off, "toggle", or a pwm level); the new state.

        With ``hold_while`` (a binary sensor) the state holds while the sensor
        is on and ``revert_after`` counts from when it goes off. The caller
        saves the timers (``TimerTable.batch``)."""
        current = self.actuators.get(name)
        level = isinstance(current, float)
        new = self.wanted = self.target(name, state)
        self.refused = None
        if new != current and not self._may_switch(
            name, current, new, who, revert_after, hold_while
        ):
            return current  # refused (an interlock) or deferred (min_on/min_off): logged
        if new != current:
            self._set(name, new, who)
            self._switches.setdefault(name, deque()).append(self.clock())
        if hold_while is not None or name in self.timers.holds:
            self.timers.holds.pop(name, None)  # any other switch ends a hold
            self.timers.touch()
        back: bool | float = (0.0 if new else 1.0) if level else not new
        if hold_while is not None:
            hold = Hold(name, hold_while, revert_after or 0.0, back, who)
            self.timers.holds[name] = hold
            self.timers.cancel(TimerKind.REVERT, name)
            self.follow(hold, self.sensors.get(hold_while))
        elif revert_after is not None:
            due = self.clock() + revert_after
            # "was": the state to restore if the gateway restarts before ``due``
            self.timers.set(Timer(TimerKind.REVERT, name, due, Switch(back, who, new)))
        else:
            self.timers.cancel(TimerKind.REVERT, name)
        if hold_while is not None:
            how = f" while {hold_while} is on, then {revert_after or 0:g}s"
        elif revert_after is not None:
            how = f" for {revert_after:g}s"
        else:
            how = ""
        _LOG.info(  # the audit line: every actuation, also one that changes nothing
            "%s %s by %s%s%s",
            name,
            _shown(new),
            who,
            how,
            "" if new != current else f" (already {_shown(new)})",
        )
        self._limit_on_time(name, bool(new))
        return new

    def over_limit(self, name: str) -> bool:
        """Whether ``name`` has used up its ``max_switches`` for now."""
        limit = self.config.actuators[name].max_switches
        if limit is None:
            return False
        recent = self._switches.setdefault(name, deque())
        while recent and recent[0] <= self.clock() - limit.per:
            recent.popleft()
        return len(recent) >= limit.switches

    def interlocked(self, name: str) -> str | None:
        """The interlocked actuator that is on now, which forbids switching ``name`` on."""
        config = self.config.actuators
        peers = {*config[name].interlock, *(n for n, a in config.items() if name in a.interlock)}
        return next((p for p in sorted(peers) if p in config and self.actuators.get(p)), None)

    def deferred(self, name: str) -> Timer | None:
        """A switch waiting for the end of ``min_on``/``min_off``."""
        return self.timers.get(TimerKind.DEFER, name)

    def refusal(self, name: str, new: bool | float) -> str | None:
        """Why switching ``name`` to ``new`` is refused now (an interlock, max_switches);
        None when it may be done. Off, the safe state, is never refused."""
        current = self.actuators.get(name)
        if not new or new == current:
            return None
        if not current and (peer := self.interlocked(name)) is not None:
            return f"is interlocked with {peer}, which is on"
        limit = self.config.actuators[name].max_switches
        if limit is not None and self.over_limit(name):
            return f"has used up its max_switches ({limit.switches} per {limit.per:g}s)"
        return None

    def _may_switch(
        self,
        name: str,
        current: bool | float,
        new: bool | float,
        who: str,
        lasts: float | None = None,
        hold: str | None = None,
    ) -> bool:
        """Interlocks and max_switches refuse; minimum times defer (a timer switches later)."""
        if (why := self.refusal(name, new)) is not None:
            self.refused = why
            _LIMITED.warning("%s %s by %s refused: %s %s", name, _shown(new), who, name, why)
            return False
        config = self.config.actuators[name]
        window = config.min_on if current and not new else config.min_off if new else None
        since = self.switched.get(name)
        if window is None or since is None or self.clock() - since >= window:
            self.timers.cancel(TimerKind.DEFER, name)
            return True
        due = since + window
        deferred = Switch(new, who, current, lasts, hold)  # the for/while start once switched
        self.timers.set(Timer(TimerKind.DEFER, name, due, deferred))
        window_name = "min_on" if current else "min_off"
        wait = due - self.clock()
        _LOG.info("%s %s by %s deferred %.0fs (%s)", name, _shown(new), who, wait, window_name)
        return False

    def target(self, name: str, state: bool | float | str) -> bool | float:
        """The state ``state`` (on/off, "toggle", a level) means for ``name`` now."""
        return switched_state(self.actuators.get(name), state)

    def _limit_on_time(self, name: str, state: bool) -> None:
        limit = self.config.actuators[name].max_on
        if limit is None:
            return
        if state and self.timers.get(TimerKind.MAX_ON, name) is None:
            due = self.clock() + limit
            self.timers.set(Timer(TimerKind.MAX_ON, name, due, Switch(False, "max_on")))
        elif not state:
            self.timers.cancel(TimerKind.MAX_ON, name)

    def fire(self, timer: Timer, switch: Switch, now: float) -> None:
        """A revert, max_on or deferred switch is due."""
        name, state = timer.key, switch.state
        if name not in self.config.actuators:
            return
        if isinstance(self.actuators.get(name), float):
            state = float(state)
        late = now - timer.due
        limit = timer.kind is TimerKind.MAX_ON
        deferred = timer.kind is TimerKind.DEFER
        why = "max_on limit" if limit else f"{'deferred' if deferred else 'timer'} by {switch.by}"
        if late > 1:
            why += f", {late:.0f}s late (was the gateway stopped?)"
        if deferred and (switch.lasts is not None or switch.hold is not None):
            self.timers.cancel(TimerKind.DEFER, name)  # made now, with its for/while
            self.switch(name, state, switch.lasts, f"{switch.by} (deferred)", switch.hold)
            return
        current = self.actuators.get(name)
        if current != state and not limit and not self._may_switch(name, current, state, why):
            return  # a switch-back inside min_on waits (max_on, a safety limit, never does)
        self.timers.cancel(TimerKind.REVERT if limit else TimerKind.MAX_ON, name)
        self.timers.cancel(TimerKind.DEFER, name)
        if self.timers.holds.pop(name, None) is not None:  # the switch-back ends the hold
            self.timers.touch()
        if current != state:
            self._set(name, state, why)
            _LOG.info("%s %s (%s)", name, _shown(state), why)
        self._limit_on_time(name, bool(state))


def _shown(state: bool | float) -> str:
    if isinstance(state, bool):
        return "on" if state else "off"
    return f"at {state:g}"
