"""Log lines that anyone outside can trigger, at most one a minute.

A hostile MQTT client, a noisy serial board or a port scanner can make a
malformed input a thousand times a second; the journal (and the SD card
under it) must not pay for each one. The first line is logged at once, the
following ones are counted and the next line says how many were left out.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

EVERY = 60.0
RULE_LINES_EVERY = 1.0  # a rule's own lines (fired, not run, webhook queued)


class RateLimitedLog:
    """``warning()`` at most once per ``every`` seconds; the rest are counted."""

    def __init__(
        self,
        logger: logging.Logger,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every = every
        self.clock = clock
        self.suppressed = 0
        self._last: float | None = None

    def log(self, level: int, message: str, *args: object) -> bool:
        """Log now if the last line is old enough; True when it was logged."""
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            self.suppressed += 1
            return False
        self._last = now
        if self.suppressed:
            message += " (%d similar lines left out)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self.logger.log(level, message, *args)
        return True

    def warning(self, message: str, *args: object) -> bool:
        return self.log(logging.WARNING, message, *args)


class KeyedLog:
    """Lines of many kinds (a rule's "fired", "not run"), each kind at most one
    per ``every`` seconds of the caller's clock (a rule's, simulated in tests);
    the next line of a kind says how many were left out."""

    def __init__(self, logger: logging.Logger, every: float = RULE_LINES_EVERY) -> None:
        self.logger = logger
        self.every = every
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # kind: last time, left out

    def info(self, key: str, now: float | dt.datetime, message: str, *args: object) -> None:
        kind = (key, message)
        if isinstance(now, dt.datetime):
            now = now.timestamp()
        last, left_out = self._last.get(kind, (None, 0))
        if last is not None and 0 <= now - last < self.every:
            self._last[kind] = last, left_out + 1
            return
        self._last[kind] = now, 0
        if left_out:
            message += " (%d similar lines left out)"
            args = (*args, left_out)
        self.logger.info(message, *args)
