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

    def log(self, level: int, message: str, *args: object, now: float | None = None) -> bool:
        """Log now if the last line is old enough; True when it was logged. ``now``:
        the caller's clock instead of ours (one going back logs at once)."""
        now = self.clock() if now is None else now
        if self._last is not None and 0 <= now - self._last < self.every:
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
    """Lines of many kinds (a rule's "fired", "not run"), each kind a
    :class:`RateLimitedLog` on the caller's clock (a rule's, simulated in tests)."""

    def __init__(self, logger: logging.Logger, every: float = RULE_LINES_EVERY) -> None:
        self.logger = logger
        self.every = every
        self._logs: dict[tuple[str, str], RateLimitedLog] = {}

    def info(self, key: str, now: float | dt.datetime, message: str, *args: object) -> None:
        log = self._logs.get((key, message))
        if log is None:
            log = self._logs[key, message] = RateLimitedLog(self.logger, self.every)
        stamp = now.timestamp() if isinstance(now, dt.datetime) else now
        log.log(logging.INFO, message, *args, now=stamp)
