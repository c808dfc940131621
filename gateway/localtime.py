"""The local time zone with its DST rules (not just today's UTC offset)."""

from __future__ import annotations

import datetime as dt
import os
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
