"""A sensor's filter chain: each reading in, a filtered reading (or nothing) out.

Stateful where the filter is (a window, a smoothed value, the last reading
that passed), and pure otherwise: the clock is passed in, so ``gateway test``
runs the same chain on its virtual clock. The timed on/off filters
(``delayed_on``, ``delayed_off``, ``settle``) hold a reading back and let it
through later: :meth:`FilterChain.due` says when, :meth:`FilterChain.release`
lets it through the rest of the chain (the runtime's timer loop calls both).
Held readings live in memory only: after a restart the input is read anew.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from typing import assert_never

from gateway.config.filters import (
    Average,
    Calibrate,
    Clamp,
    DelayedOff,
    DelayedOn,
    Delta,
    Exponential,
    Filter,
    Invert,
    Median,
    Multiply,
    Offset,
    Round,
    Settle,
    Throttle,
)
from gateway.events import Value


def line_through(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The least-squares line ``true = slope * raw + intercept`` through the points."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    return slope, mean_y - slope * mean_x


class FilterChain:
    def __init__(self, filters: Sequence[Filter]) -> None:
        self.filters = list(filters)
        self._windows: dict[int, deque[float]] = {}
        self._smoothed: dict[int, float] = {}
        self._passed: dict[int, float] = {}  # delta: the last value let through
        self._last_time: dict[int, float] = {}  # throttle
        self._held: dict[int, tuple[float, Value]] = {}  # timed filters: (due, reading)
        self._out: dict[int, Value] = {}  # timed filters: the last reading let through
        self._quiet: dict[int, float] = {}  # settle: no change passes before this
        self._lines = {
            i: line_through(f.calibrate)
            for i, f in enumerate(self.filters)
            if isinstance(f, Calibrate)
        }

    def __bool__(self) -> bool:
        return bool(self.filters)

    def __call__(self, value: Value, now: float) -> Value | None:
        """The filtered reading, or None when a filter holds it back."""
        return self._from(0, value, now)

    def due(self) -> float | None:
        """When a held reading is next let through (None: nothing held)."""
        return min((due for due, _ in self._held.values()), default=None)

    def release(self, now: float) -> list[Value]:
        """The held readings whose time has come, through the rest of the chain."""
        out: list[Value] = []
        for i in sorted(i for i, (due, _) in self._held.items() if due <= now):
            _, value = self._held.pop(i)
            if isinstance(self.filters[i], Settle) and value == self._out.get(i):
                continue  # it settled back where it was
            self._out[i] = value
            passed = self._from(i + 1, value, now)
            if passed is not None:
                out.append(passed)
        return out

    def _from(self, start: int, value: Value, now: float) -> Value | None:
        current: Value | None = value
        for i in range(start, len(self.filters)):
            if current is None:
                return None
            current = self._one(i, self.filters[i], current, now)
        return current

    def _timed(
        self, i: int, f: DelayedOn | DelayedOff | Settle, value: Value, now: float
    ) -> Value | None:
        match f:
            case DelayedOn() | DelayedOff():
                slow = isinstance(f, DelayedOn)  # the state that must last
                wait = f.delayed_on if isinstance(f, DelayedOn) else f.delayed_off
                if bool(value) is not slow or self._out.get(i) == value:
                    self._held.pop(i, None)  # the change back drops the held one
                    self._out[i] = value
                    return value
                if i not in self._held:
                    self._held[i] = (now + wait, value)
                return None
            case Settle():
                if now < self._quiet.get(i, float("-inf")):
                    self._quiet[i] = now + f.settle  # not quiet yet: wait again
                    self._held[i] = (now + f.settle, value)
                    return None
                if i in self._out and value == self._out[i]:
                    return value
                self._out[i] = value
                self._quiet[i] = now + f.settle
                return value
            case _:
                assert_never(f)

    def _one(self, i: int, f: Filter, value: Value, now: float) -> Value | None:
        if isinstance(f, DelayedOn | DelayedOff | Settle):
            return self._timed(i, f, value, now)
        if isinstance(f, Invert):
            return (not value) if isinstance(value, bool) and f.invert else value
        if isinstance(f, Throttle):
            last = self._last_time.get(i)
            if last is not None and now - last < f.throttle:
                return None
            self._last_time[i] = now
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value  # numeric filters leave on/off and text alone (check refuses them)
        x = float(value)
        match f:
            case Offset():
                return x + f.offset
            case Multiply():
                return x * f.multiply
            case Calibrate():
                slope, intercept = self._lines[i]
                return slope * x + intercept
            case Round():
                return round(x, f.round)
            case Clamp():
                low = f.clamp.min if f.clamp.min is not None else x
                high = f.clamp.max if f.clamp.max is not None else x
                return min(max(x, low), high)
            case Median() | Average():
                size = f.median if isinstance(f, Median) else f.average
                window = self._windows.setdefault(i, deque(maxlen=size))
                window.append(x)
                pick = statistics.median if isinstance(f, Median) else statistics.fmean
                return pick(window)
            case Exponential():
                old = self._smoothed.get(i, x)
                self._smoothed[i] = new = f.exponential * x + (1 - f.exponential) * old
                return new
            case Delta():
                passed = self._passed.get(i)
                if passed is not None and abs(x - passed) < f.delta:
                    return None
                self._passed[i] = x
                return x
            case _:
                assert_never(f)
