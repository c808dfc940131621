"""A sensor's filter chain: each reading in, a filtered reading (or nothing) out.

Stateful where the filter is (a window, a smoothed value, the last reading
that passed), and pure otherwise: the clock is passed in, so ``gateway test``
runs the same chain on its virtual clock.
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
    Delta,
    Exponential,
    Filter,
    Invert,
    Median,
    Multiply,
    Offset,
    Round,
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
        self._lines = {
            i: line_through(f.calibrate)
            for i, f in enumerate(self.filters)
            if isinstance(f, Calibrate)
        }

    def __bool__(self) -> bool:
        return bool(self.filters)

    def __call__(self, value: Value, now: float) -> Value | None:
        """The filtered reading, or None when a filter holds it back."""
        current: Value | None = value
        for i, f in enumerate(self.filters):
            if current is None:
                return None
            current = self._one(i, f, current, now)
        return current

    def _one(self, i: int, f: Filter, value: Value, now: float) -> Value | None:
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
