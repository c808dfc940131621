"""Comparing readings with what triggers and conditions ask, and local clock times."""

from __future__ import annotations

import datetime as dt

from gateway.config.rules import SensorTrigger
from gateway.events import Value


def trigger_holds(trigger: SensorTrigger, value: Value) -> bool:
    if trigger.above is not None or trigger.below is not None:
        return in_range(value, trigger.above, trigger.below)
    return trigger.to is None or equal(value, trigger.to)


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
