"""Comparing readings with what triggers and conditions ask, and local clock times."""

from __future__ import annotations

import datetime as dt

from gateway.config.rules import SensorTrigger
from gateway.events import Value


def trigger_holds(trigger: SensorTrigger, value: Value) -> bool:
    if trigger.above is not None or trigger.below is not None:
        return in_range(value, trigger.above, trigger.below)
    return trigger.to is None or equal(value, trigger.to)


def crossing(
    armed: dict[str, bool],
    key: str,
    trigger: SensorTrigger,
    value: Value,
    previous: Value | None,
) -> tuple[bool, bool]:
    """Crossing into above/below (with hysteresis): (fires now, still inside).

    ``armed`` is the engine's memory per trigger ``key``: whether the value
    left the range far enough since it last fired."""
    inside = in_range(value, trigger.above, trigger.below)
    was_armed = armed.get(key)
    if was_armed is None:  # no crossing is seen from an unknown previous value
        was_armed = previous is not None and not in_range(previous, trigger.above, trigger.below)
    if inside:
        armed[key] = False
    elif rearmed(value, trigger):
        armed[key] = True
    return inside and was_armed, inside


def changed_enough(
    last_values: dict[str, float],
    key: str,
    trigger: SensorTrigger,
    value: Value,
    previous: Value | None,
) -> bool:
    """``changes:`` triggers: any change, or a change of at least N since it last fired
    (``last_values`` is the engine's memory of the value it last fired at, per ``key``)."""
    step = trigger.changes
    if step is None or isinstance(step, bool):
        return True  # any change, also the first value after an unknown one
    if previous is None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            last_values[key] = float(value)
        return False
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    last = last_values.get(key)
    if last is None:
        last = float(previous) if isinstance(previous, int | float) else float(value)
    if abs(float(value) - last) >= step:
        last_values[key] = float(value)
        return True
    return False


def clicked(
    memory: tuple[dict[str, float], dict[str, float]],
    key: str,
    trigger: SensorTrigger,
    value: Value,
    time: float,
) -> bool:
    """Click gestures: a press shorter than ``click_max`` is a click, two clicks within
    ``double_gap`` a double click. As ESPHome's on_click and on_double_click, each
    click of a double click is also a click (no waiting for a second one).

    ``memory`` is the engine's (when a press began, when a first click ended)."""
    pressed, first = memory
    if value is True:
        pressed[key] = time
        return False
    began = pressed.pop(key, None)
    if value is not False or began is None or time - began > trigger.click_max:
        return False
    if trigger.gesture == "click":
        return True
    last = first.pop(key, None)
    if last is not None and time - last <= trigger.double_gap:
        return True
    first[key] = time
    return False


def rearmed(value: Value, trigger: SensorTrigger) -> bool:
    """Whether the value left the range far enough to fire again (hysteresis)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    margin = trigger.hysteresis or 0.0
    if margin == 0.0:
        return not in_range(value, trigger.above, trigger.below)
    low_ok = trigger.above is not None and value <= trigger.above - margin
    high_ok = trigger.below is not None and value >= trigger.below + margin
    return low_ok or high_ok


def equal(value: Value | None, target: Value) -> bool:
    if isinstance(target, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(target, bool) and value == target
    if isinstance(target, int | float) and isinstance(value, int | float):
        return float(value) == float(target)
    return value == target


def switched_state(current: bool | float | None, state: bool | float | str) -> bool | float:
    """The state ``state`` (on/off, "toggle", a level) means for an actuator now at
    ``current`` (a float: a pwm output, whose on is 1.0)."""
    level = isinstance(current, float)
    if state == "toggle":
        return (0.0 if current else 1.0) if level else not current
    if isinstance(state, float) and not isinstance(state, bool):
        return min(max(state, 0.0), 1.0) if level else state > 0
    return (1.0 if state else 0.0) if level else bool(state)


def in_range(value: Value | None, above: float | None, below: float | None) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return (above is None or value > above) and (below is None or value < below)


def next_local_time(now: dt.datetime, at: dt.time) -> float:
    """The next moment after ``now`` when the local clock shows ``at`` (DST-safe).

    On the day clocks spring forward, a time inside the gap happens at the
    same offset as before the change (02:30 becomes 03:30); on the day they
    fall back, a repeated time happens once, the first time.
    """
    tz = now.tzinfo
    day = now.date()
    for _ in range(3):
        candidate = dt.datetime.combine(day, at, tzinfo=tz)
        moment = candidate.timestamp()
        if moment > now.timestamp():
            return moment
        day += dt.timedelta(days=1)
    raise AssertionError("unreachable: one of three days has the time")  # pragma: no cover
