"""Turning one line from a serial device into named values.

Pure functions, one per ``format``. Numbers become numbers; a line that does
not fit the format raises :class:`LineError` with what was wrong.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable

from gateway import safejson
from gateway.config.connections import SerialPort
from gateway.events import Value


class LineError(ValueError):
    """A line does not fit the port's format."""


def coerce(text: str) -> Value:
    """``"21.5"`` -> 21.5, ``"40"`` -> 40, anything else stays text."""
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        number = float(stripped)
    except ValueError:
        return stripped
    return number if safejson.finite(number) else stripped  # "nan", "inf": not a reading


def parse_json(line: str, port: SerialPort) -> dict[str, Value]:
    try:
        doc = safejson.loads(line)
    except safejson.JsonError as exc:
        raise LineError(str(exc)) from None
    if not isinstance(doc, dict):
        raise LineError('a JSON line must be an object like {"temp": 21.5}')
    return {str(k): v for k, v in doc.items() if isinstance(v, bool | int | float | str)}


_KV = re.compile(r"([^\s=,;]+)\s*[=:]\s*([^\s,;]+)")


def parse_kv(line: str, port: SerialPort) -> dict[str, Value]:
    pairs = _KV.findall(line)
    if not pairs:
        raise LineError("no key=value pairs")
    return {key: coerce(value) for key, value in pairs}


def parse_csv(line: str, port: SerialPort) -> dict[str, Value]:
    assert port.fields is not None
    cells = [c.strip() for c in next(csv.reader([line], skipinitialspace=True), [])]
    if len(cells) != len(port.fields):
        raise LineError(
            f"{len(cells)} columns, expected {len(port.fields)} ({', '.join(port.fields)})"
        )
    return {name: coerce(cell) for name, cell in zip(port.fields, cells, strict=True)}


def parse_regex(line: str, port: SerialPort) -> dict[str, Value]:
    assert port.pattern is not None
    match = re.search(port.pattern, line)
    if match is None:
        raise LineError("does not match the pattern")
    return {k: coerce(v) for k, v in match.groupdict().items() if v is not None}


def parse_raw(line: str, port: SerialPort) -> dict[str, Value]:
    return {"line": line}


PARSERS: dict[str, Callable[[str, SerialPort], dict[str, Value]]] = {
    "json": parse_json,
    "kv": parse_kv,
    "csv": parse_csv,
    "regex": parse_regex,
    "raw": parse_raw,
}


class LineSplitter:
    """Reassembles lines split across reads; drops (and reports) overlong ones."""

    def __init__(self, delimiter: bytes, max_line: int) -> None:
        self.delimiter = delimiter
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = False
        self.overlong = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines: list[bytes] = []
        while True:
            index = self._buffer.find(self.delimiter)
            if index < 0:
                if len(self._buffer) > self.max_line:
                    if not self._discarding:
                        self.overlong += 1
                    self._discarding = True  # skip to the next delimiter
                    self._buffer.clear()
                return lines
            line = bytes(self._buffer[:index])
            del self._buffer[: index + len(self.delimiter)]
            if self._discarding:
                self._discarding = False
                continue
            if len(line) > self.max_line:
                self.overlong += 1
                continue
            lines.append(line.rstrip(b"\r"))  # "\r\n" works with the default "\n"
