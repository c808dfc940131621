"""Serial ports: lines from a sensor board become sensor readings.

Opened with pyserial-asyncio-fast, so reading never blocks the event loop.
An unplugged adapter (``SerialException`` or ``OSError(EIO)``) closes the
port; it is reopened by its path with a capped backoff, forever. A
malformed line is counted and logged (at most once a minute per port); it
never stops the reader or costs the next line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import serial
import serial_asyncio_fast

from gateway.config.connections import SerialPort
from gateway.events import Value
from gateway.inputs import OnLost, nothing_lost
from gateway.inputs.parsers import PARSERS, LineError, LineSplitter
from gateway.ratelog import RateLimitedLog

_LOG = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
WARN_EVERY = 60.0

OnReading = Callable[[str, Value], None]


class SerialInput:
    """One serial port and the sensors that take fields from its lines."""

    def __init__(
        self,
        name: str,
        config: SerialPort,
        sensors: dict[str, str | None],
        on_reading: OnReading,
        on_lost: OnLost = nothing_lost,
    ) -> None:
        self.name = name
        self.config = config
        self.sensors = sensors  # sensor name -> field (None: the whole line)
        self.on_reading = on_reading
        self.on_lost = on_lost
        self.state = "disconnected"
        self.lines = 0
        self.malformed = 0
        self.reconnects = 0
        self._writer: asyncio.StreamWriter | None = None
        self._bad_log = RateLimitedLog(_LOG, WARN_EVERY)
        self._parse = PARSERS[config.format]

    async def run(self) -> None:
        """Read until cancelled, reconnecting with a capped backoff."""
        delay = BACKOFF_FIRST
        told = False  # on_lost was called for this outage
        while True:
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=self.config.port,
                    baudrate=self.config.baudrate,
                    bytesize=self.config.bytesize,
                    parity=self.config.parity,
                    stopbits=self.config.stopbits,
                )
            except (serial.SerialException, OSError) as exc:
                if self.reconnects == 0:
                    _LOG.warning(
                        "serial %s: cannot open %s: %s; retrying", self.name, self.config.port, exc
                    )
                if not told:
                    self.on_lost(list(self.sensors), f"serial {self.name}: cannot open")
                    told = True
                self.state = "disconnected"
                self.reconnects += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            delay = BACKOFF_FIRST
            self._writer = writer
            self.state = "connected"
            told = False
            _LOG.info("serial %s: connected to %s", self.name, self.config.port)
            try:
                await self._read(reader)
            except (serial.SerialException, OSError) as exc:
                _LOG.warning(
                    "serial %s: %s lost (%s); reconnecting", self.name, self.config.port, exc
                )
                self.state = "disconnected"
                self.on_lost(list(self.sensors), f"serial {self.name} lost")
                told = True
            finally:
                self.state = "disconnected"
                self._writer = None
                writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        splitter = LineSplitter(self.config.delimiter.encode(), self.config.max_line)
        while True:
            data = await reader.read(4096)
            if not data:
                raise OSError("end of file (unplugged?)")
            overlong = splitter.overlong
            for line in splitter.feed(data):
                self.handle_line(line)
            if splitter.overlong > overlong:
                self.malformed += splitter.overlong - overlong
                self._warn(f"a line longer than {self.config.max_line} bytes was dropped")

    def handle_line(self, raw: bytes) -> None:
        """Parse one line and report the fields the sensors want; never raises."""
        self.lines += 1
        try:
            self._handle_line(raw)
        except Exception as exc:  # whatever the bytes: counted, logged, next line
            self.malformed += 1
            self._warn(f"a line could not be handled ({type(exc).__name__}: {str(exc)[:80]})")

    def _handle_line(self, raw: bytes) -> None:
        try:
            text = raw.decode(self.config.encoding)
        except UnicodeDecodeError:
            self.malformed += 1
            self._warn(f"a line is not {self.config.encoding}: {raw[:40]!r}")
            return
        if not text.strip():
            return
        try:
            fields = self._parse(text, self.config)
        except LineError as exc:
            self.malformed += 1
            self._warn(f"malformed line {text[:80]!r}: {exc}")
            return
        for sensor, field in self.sensors.items():
            key = field or "line"
            if key in fields:
                self.on_reading(sensor, fields[key])

    async def flush(self) -> None:
        """Wait until what was written left for the device (before a clean stop)."""
        if self._writer is not None:
            await self._writer.drain()

    def write(self, data: str) -> None:
        """Write to the port (serial_write, serial actuators); an error if unplugged."""
        if self._writer is None:
            raise OSError(f"serial port {self.name} is not connected")
        self._writer.write(data.encode(self.config.encoding))

    def _warn(self, message: str) -> None:
        self._bad_log.warning(
            "serial %s: %s (%d malformed so far)", self.name, message, self.malformed
        )
