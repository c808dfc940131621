"""How the daemon's log lines look: for a terminal, for journald, or as JSON.

journald stores a line without a ``<N>`` prefix at the unit's default
priority (info), so ``journalctl -p warning`` would find nothing. When
stderr is the journal (``JOURNAL_STREAM`` names stderr's device and inode,
as systemd documents), each line starts with its syslog priority, and the
timestamp is left to journald.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import TextIO

PRIORITIES = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def stderr_is_journal() -> bool:
    """Whether stderr is connected to journald (not merely started by systemd)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return (stat.st_dev, stat.st_ino) == (int(device), int(inode))


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (levels between take the lower one's)."""
    for level in sorted(PRIORITIES, reverse=True):
        if levelno >= level:
            return PRIORITIES[level]
    return 7


class JournalFormatter(logging.Formatter):
    """``<4>gateway.outbox.delivery: ...``: journald reads the priority, adds the time."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines())  # a traceback too


class TextFormatter(logging.Formatter):
    """``2026-12-02 07:37:02,980 INFO    name: message``, the time formatted once a second."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (
                second,
                time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second)),
            )
        return f"{cached[1]},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601, ms, Z), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class TurnHandler(logging.StreamHandler[TextIO]):
    """Lines logged in one turn of the event loop are written together, as it ends.

    Under load each API actuation's audit line was a ``write(2)`` of its own, a
    tenth of the request's time. A line logged outside the loop (another
    thread, or no loop running) is written at once, after any still waiting,
    so the order holds; :meth:`flush` (also at exit) writes what waits."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        self._turn: asyncio.AbstractEventLoop | None = None  # whose callback will write

    def emit(self, record: logging.LogRecord) -> None:  # the handler's lock is held
        try:
            self._waiting.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self._write()
        elif self._turn is not loop:
            self._turn = loop
            loop.call_soon(self._end_of_turn)

    def _end_of_turn(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created in __init__
            self._turn = None
            self._write()

    def _write(self) -> None:
        if not self._waiting:
            return
        text, self._waiting = "".join(self._waiting), []
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # a closed or full stderr must not stop the daemon
            self.handleError(logging.makeLogRecord({"msg": text}))

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()
        super().flush()


def setup(level: str, style: str = "text") -> None:
    """Configure the root logger (only the CLI calls this)."""
    handler = TurnHandler(sys.stderr)
    if style == "json":
        handler.setFormatter(JsonFormatter())
    elif stderr_is_journal():
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(TextFormatter())
    # No format shows where a line was logged from, nor its thread or process:
    # not looking them up is about half of what a line costs (the audit line of
    # each API actuation among them); the logging HOWTO's "Optimization" table.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
