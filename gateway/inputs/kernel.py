"""Polled sensors read from the kernel's files: 1-Wire probes and thermal zones.

Each sensor is read every ``every`` seconds in a worker thread, with a
timeout of the same length, so a hung bus never blocks the event loop nor
delays the other sensors. What the kernel documents:

- 1-Wire (``w1_therm``): ``w1_slave`` is two lines, the first ending in
  ``crc=XX YES`` (or ``NO``: a bad read), the second in ``t=23125`` (milli °C).
  A DS18B20 answers 85 °C (``t=85000``) before its first conversion: not a
  reading. Newer kernels add ``temperature`` (milli °C alone), read first.
- Thermal zones: ``temp`` is milli °C.
- Industrial I/O (``/sys/bus/iio/devices/iio:deviceN``, found by its
  ``name``): ``in_CHANNEL_input``, else ``(in_CHANNEL_raw + _offset) *
  _scale``, in the IIO ABI's units (milli °C, milli %RH, kPa, mV), given in
  °C, %RH, hPa and V; an EIO (a DHT's checksum miss) is tried again.

A file that is gone (a probe unplugged, a bus without its pull-up) makes
the input ``disconnected`` until it reads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable
from pathlib import Path

from gateway.config.kernel import HwmonSensor, IioSensor, KernelSensor, OneWireSensor
from gateway.inputs import OnLost, nothing_lost
from gateway.ratelog import RateLimitedLog

_LOG = logging.getLogger(__name__)
_BAD = RateLimitedLog(_LOG)

POWER_ON = 85_000  # a DS18B20's reset value, in milli °C


class BadReading(Exception):
    """The device answered, but not with a reading (a CRC error, the power-on value)."""


def read_onewire(device: Path) -> float:
    """°C from a 1-Wire temperature device directory. Raises OSError, BadReading."""
    try:
        text = (device / "temperature").read_text().strip()
    except FileNotFoundError:
        if not device.exists():
            raise
        text = _w1_slave((device / "w1_slave").read_text())
    try:
        millis = int(text)
    except ValueError:
        raise BadReading(f"not a number: {text!r:.40}") from None
    if millis == POWER_ON:
        raise BadReading("85 °C: the power-on value, not a measurement")
    return millis / 1000


def _w1_slave(text: str) -> str:
    """The ``t=`` value of a ``w1_slave`` file whose CRC line says YES."""
    lines = text.splitlines()
    if len(lines) < 2 or not lines[0].rstrip().endswith("YES"):
        raise BadReading(f"CRC check failed: {lines[0] if lines else 'empty'!r:.80}")
    _, sep, value = lines[1].rpartition("t=")
    if not sep:
        raise BadReading(f"no t= in {lines[1]!r:.80}")
    return value


def read_thermal(zone: Path) -> float:
    """°C from a thermal zone directory. Raises OSError, BadReading."""
    try:
        return int((zone / "temp").read_text().strip()) / 1000
    except ValueError as exc:
        raise BadReading(f"not a number: {exc}") from None


IIO_UNITS = {"temp": 0.001, "humidityrelative": 0.001, "pressure": 10.0, "voltage": 0.001}
"""From the IIO ABI's units (milli °C, milli %RH, kPa, mV) to °C, %RH, hPa, V."""
EIO_TRIES = 3  # DHT sensors often answer EIO: a checksum or timing miss on the wire


def iio_device(devices: Path, name: str) -> Path:
    """The ``iio:deviceN`` directory named ``name`` (its own name, or its name file's)."""
    if (devices / name).is_dir():
        return devices / name
    for device in sorted(devices.glob("iio:device*")):
        with contextlib.suppress(OSError):
            if (device / "name").read_text().strip() == name:
                return device
    raise FileNotFoundError(f"no IIO device named {name!r} in {devices}")


def read_iio(device: Path, channel: str) -> float:
    """A channel in people's units: ``in_CHANNEL_input``, else (raw + offset) * scale."""
    unit = IIO_UNITS.get(channel.rstrip("0123456789"), 1.0)
    for attempt in range(EIO_TRIES):
        try:
            return _iio_value(device, channel) * unit
        except OSError as exc:
            if exc.errno != errno.EIO or attempt == EIO_TRIES - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _iio_value(device: Path, channel: str) -> float:
    base = device / f"in_{channel}"
    try:
        text = base.with_name(base.name + "_input").read_text()
        return _number(text)
    except FileNotFoundError:
        raw = _number(base.with_name(base.name + "_raw").read_text())
    offset = _optional(base.with_name(base.name + "_offset"))
    scale = _optional(base.with_name(base.name + "_scale"), 1.0)
    return (raw + offset) * scale


def _optional(path: Path, default: float = 0.0) -> float:
    try:
        return _number(path.read_text())
    except FileNotFoundError:
        return default


def _number(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise BadReading(f"not a number: {text.strip()!r:.40}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise BadReading(f"not a number: {text.strip()!r:.40}")
    return value


HWMON_UNITS = {"temp": 0.001, "humidity": 0.001, "in": 0.001, "fan": 1.0, "power": 1e-6}
"""From hwmon's units (milli °C, milli %RH, mV, rpm, µW) to °C, %RH, V, rpm, W."""


def hwmon_device(hwmon: Path, name: str) -> Path:
    """The ``hwmonN`` directory whose name file says ``name``."""
    for device in sorted(hwmon.glob("hwmon*")):
        with contextlib.suppress(OSError):
            if (device / "name").read_text().strip() == name:
                return device
    raise FileNotFoundError(f"no hwmon chip named {name!r} in {hwmon}")


def read_hwmon(device: Path, channel: str) -> float:
    unit = HWMON_UNITS.get(channel.rstrip("0123456789"), 1.0)
    return _number((device / f"{channel}_input").read_text()) * unit


class KernelInput:
    """One polled sensor; reports each good reading to ``on_reading``."""

    def __init__(
        self,
        name: str,
        config: KernelSensor,
        sysfs: Path,
        on_reading: Callable[[str, float], None],
        on_lost: OnLost = nothing_lost,
    ) -> None:
        self.name = name
        self.on_lost = on_lost
        self.config = config
        self.every = config.every
        self.on_reading = on_reading
        if isinstance(config, OneWireSensor):
            self.source, self.path = "onewire", sysfs / "bus" / "w1" / "devices" / config.onewire
            self._read: Callable[[Path], float] = read_onewire
        elif isinstance(config, HwmonSensor):
            self.source, self.path = "hwmon", sysfs / "class" / "hwmon"
            chip, name = config.hwmon, config.channel
            self._read = lambda hwmon: read_hwmon(hwmon_device(hwmon, chip), name)
        elif isinstance(config, IioSensor):
            self.source, self.path = "iio", sysfs / "bus" / "iio" / "devices"
            device, channel = config.iio, config.channel
            self._read = lambda devices: read_iio(iio_device(devices, device), channel)
        else:
            self.source, self.path = "thermal", sysfs / "class" / "thermal" / config.thermal
            self._read = read_thermal
        self.state = "disconnected"
        self.readings = 0
        self.malformed = 0
        self.reconnects = 0

    async def run(self) -> None:
        """Read until cancelled."""
        while True:
            await self.poll()
            await asyncio.sleep(self.every)

    async def poll(self) -> None:
        try:
            async with asyncio.timeout(self.every):
                value = await asyncio.to_thread(self._read, self.path)
        except (OSError, TimeoutError) as exc:
            if self.state == "connected" or not self.readings:
                why = "no answer in time" if isinstance(exc, TimeoutError) else exc
                _BAD.warning("%s %s: cannot read %s: %s", self.source, self.name, self.path, why)
                self.on_lost([self.name], f"{self.source} {self.name}: cannot read")
            self.state = "disconnected"
            return
        except BadReading as exc:
            self.malformed += 1
            _BAD.warning("%s %s: bad reading: %s", self.source, self.name, exc)
            return
        if self.state != "connected":
            if self.readings:
                self.reconnects += 1
                _LOG.info("%s %s: reading again", self.source, self.name)
            self.state = "connected"
        self.readings += 1
        self.on_reading(self.name, value)

    def describe(self) -> dict[str, object]:
        return {
            "type": self.source,
            "state": self.state,
            "path": str(self.path),
            "readings": self.readings,
            "malformed": self.malformed,
            "reconnects": self.reconnects,
        }
