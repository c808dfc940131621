"""Sensors the Pi's kernel already drives, read from the files it exposes.

A DS18B20 on the 1-Wire bus (``dtoverlay=w1-gpio``) is
``/sys/bus/w1/devices/28-.../w1_slave``; the SoC's own temperature is
``/sys/class/thermal/thermal_zone0/temp``. ``gateway.sysfs`` names the root
(``/sys``), so a test can point it at a tree of its own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.config.filters import Filtered
from gateway.config.types import Duration


class Polled(Filtered):
    """What every kernel sensor has: numbers, read on a schedule."""

    kind: Literal["number"] = Field(
        "number", description="Readings are numbers in people's units: °C, %RH, hPa, V, rpm"
    )

    @property
    def binary(self) -> bool:
        return False


class OneWireSensor(Polled):
    """A 1-Wire temperature probe (DS18B20, DS18S20, DS1822, MAX31850), in °C."""

    onewire: str = Field(
        pattern=r"^[0-9a-f]{2}-[0-9a-f]{12}$",
        description="The device id as the kernel names it, e.g. 28-0316a279cbff",
    )
    every: Duration = Field(10.0, ge=1.0, description="How often to read (a read takes ~0.75 s)")


class ThermalSensor(Polled):
    """A kernel thermal zone, in °C: ``thermal_zone0`` is the Pi's SoC."""

    thermal: str = Field(
        pattern=r"^thermal_zone[0-9]+$", description="The zone, e.g. thermal_zone0"
    )
    every: Duration = Field(30.0, gt=0, description="How often to read")


class IioSensor(Polled):
    """A channel of an Industrial I/O device: DHT11/DHT22 (``dtoverlay=dht11``),
    BME280/BMP280, ADS1015/ADS1115, MCP3008, as the kernel drives them."""

    iio: str = Field(
        description="The device's name (what its name file says, e.g. bme280, dht11) or iio:deviceN"
    )
    channel: str = Field(
        pattern=r"^[a-z]+[0-9]*$",
        description="temp, humidityrelative, pressure, voltage0, ...: read from in_CHANNEL_input, "
        "else (in_CHANNEL_raw + _offset) * _scale",
    )
    every: Duration = Field(30.0, ge=1.0, description="How often to read (DHTs: 2 s or more)")


class HwmonSensor(Polled):
    """A hardware-monitor channel (SHT3x, LM75, the Pi 5's fan and ADC), as the kernel
    drives them: ``/sys/class/hwmon/hwmonN`` whose name file says ``hwmon``."""

    hwmon: str = Field(description="The chip's name (its name file), e.g. sht3x, lm75")
    channel: str = Field(
        pattern=r"^[a-z]+[0-9]+$",
        description="temp1, humidity1, in0, fan1, ...: read from CHANNEL_input",
    )
    every: Duration = Field(30.0, gt=0, description="How often to read")


KernelSensor = OneWireSensor | ThermalSensor | IioSensor | HwmonSensor
