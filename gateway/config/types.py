"""Value types people write in config files: durations, on/off, times of day."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from gateway.config.loader import shown

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_DURATION = 366 * 86400.0
"""The longest duration anywhere (a year): longer is a typo, and times past
year 9999 cannot even be written down."""


def parse_duration(value: Any) -> float:
    """Seconds from ``250ms``, ``30s``, ``5m``, ``1h30m``, ``2d`` or a plain number."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 5m or 1h30m, got {shown(value)}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"{shown(value)} is not a duration: write e.g. 250ms, 30s, 5m, 1h30m or 2d"
                ) from None
    else:
        raise ValueError(f"expected a duration like 30s, 5m or 1h30m, got {shown(value)}")
    if seconds != seconds:  # NaN
        raise ValueError(f"{shown(value)} is not a duration: write e.g. 30s, 5m or 1h30m")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError(f"{shown(value)} is too long: a duration is at most 366d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest way to write ``seconds`` back: 90 -> ``1m30s``."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    parts = []
    rest = round(seconds, 3)
    for unit, size in (("h", 3600), ("m", 60)):
        if rest >= size:
            parts.append(f"{int(rest // size)}{unit}")
            rest -= (rest // size) * size
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$")
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 1024,
    "kib": 1024,
    "mb": 1024**2,
    "mib": 1024**2,
    "gb": 1024**3,
    "gib": 1024**3,
}


def parse_size(value: Any) -> int:
    """Bytes from ``512kB``, ``256MB``, ``1GB`` (powers of 1024) or a plain number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value.strip().lower()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{shown(value)} is not a size: write e.g. 512kB, 256MB or 1GB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


_TRUE = {"on", "true", "yes", "1", "high"}
_FALSE = {"off", "false", "no", "0", "low"}


def parse_binary(value: Any) -> bool:
    """``on/off``, ``true/false``, ``1/0``, ``high/low`` (any case) as a boolean.

    YAML 1.1 already turns a bare ``on`` into ``True``; quoted ``"on"`` is
    accepted the same.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"expected on or off (also true/false, 1/0, high/low), got {shown(value)}")


def parse_time_of_day(value: Any) -> dt.time:
    """``"07:30"`` or ``"07:30:15"`` as a time. A bare 07:30 is a YAML number: say so."""
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        hours, minutes = divmod(value, 60)
        raise ValueError(
            f"YAML read this time as the number {value}: put it in quotes, "
            f'e.g. "{hours:02d}:{minutes:02d}"'
        )
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f'expected a time of day in quotes like "07:30", got {shown(value)}')


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(ge=0),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?(ms|s|m|h|d)\s*)+$"},
                {"type": "number", "minimum": 0, "maximum": MAX_DURATION},
            ],
            "description": "A duration: 250ms, 30s, 5m, 1h30m, 2d or a number of seconds "
            "(at most 366d)",
        }
    ),
]
"""A duration in seconds, written as ``30s``, ``5m``, ``1h30m`` or a number."""

BinaryState = Annotated[
    bool,
    BeforeValidator(parse_binary),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "boolean"},
                {"enum": ["on", "off", "true", "false", "high", "low", "1", "0", 0, 1]},
            ],
            "description": "on or off",
        }
    ),
]
"""A binary state: on/off, true/false, 1/0 or high/low."""

TimeOfDay = Annotated[
    dt.time,
    BeforeValidator(parse_time_of_day),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{2}:\d{2}(:\d{2})?$",
            "description": 'A local time of day in quotes, "HH:MM"',
        }
    ),
]
"""A local time of day, written in quotes as ``"07:30"``."""

ByteSize = Annotated[
    int,
    BeforeValidator(parse_size),
    Field(gt=0),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 1}],
            "description": "A size: 512kB, 256MB, 1GB or a number of bytes",
        }
    ),
]
"""A size in bytes, written as ``256MB`` or a number."""
