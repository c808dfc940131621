"""The local time zone with its DST rules (not just today's UTC offset)."""

from __future__ import annotations

import datetime as dt
import os
import time
import zoneinfo
from pathlib import Path


def local_zone(name: str | None = None) -> dt.tzinfo:
    """``name`` (an IANA zone), else ``$TZ``, else the system's ``/etc/localtime``.

    ``datetime.now().astimezone().tzinfo`` would be a fixed offset: wrong
    for half the year wherever clocks change.
    """
    for candidate in (name, os.environ.get("TZ", "").lstrip(":") or None):
        if candidate:
            return zoneinfo.ZoneInfo(candidate)
    localtime = Path("/etc/localtime")
    try:
        with localtime.open("rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key=str(localtime.resolve()))
    except (OSError, ValueError):
        return dt.datetime.now().astimezone().tzinfo or dt.UTC


def iso_utc(epoch: float) -> str:
    """The one time format of bodies and answers: ISO 8601, UTC, milliseconds, ``Z``
    (``2026-01-15T21:05:00.250Z``), as Standard Webhooks' envelope has it."""
    millis = int(epoch * 1000)  # truncated: a stamp never shows a time not yet reached
    seconds, ms = divmod(millis, 1000)
    global _second
    cached = _second  # one reference: threads never see half an update
    if cached[0] != seconds:  # formatted once a second, not once a webhook
        cached = _second = seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{cached[1]}.{ms:03d}Z"


_second: tuple[int, str] = (-1, "")
