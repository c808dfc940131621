"""The hardware one config opens: the pin factory, GPIO inputs, every actuator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.models import GatewayConfig, GpioSensor
from gateway.errors import HardwareError
from gateway.inputs.gpio import GpioInput
from gateway.interfaces import Links
from gateway.outputs.actuators import ActuatorBank
from gateway.pins import make_pin_factory


@dataclass
class Devices:
    """The pin factory and the devices built from one config."""

    factory: Any
    outputs: ActuatorBank
    inputs: dict[str, GpioInput] = field(default_factory=dict)
    closed: bool = False

    @classmethod
    def open(
        cls,
        config: GatewayConfig,
        simulate: bool,
        links: Links,
        loop: asyncio.AbstractEventLoop,
        on_edge: Callable[[str, bool], None],
        states: Mapping[str, bool | float] | None = None,
    ) -> Devices:
        """Open every pin of ``config``; on a :class:`HardwareError` nothing stays open."""
        factory = make_pin_factory(config.gpio.pin_factory, simulate)
        devices = cls(factory, ActuatorBank(dict(config.actuators), factory, links, states))
        try:
            for name, sensor in config.sensors.items():
                if isinstance(sensor, GpioSensor):
                    devices.inputs[name] = GpioInput(name, sensor, factory, loop, on_edge)
        except HardwareError:
            devices.close()
            raise
        return devices

    def readings(self) -> dict[str, bool]:
        """What every GPIO input reads now."""
        return {name: device.value for name, device in self.inputs.items()}

    def close(self) -> None:
        """Close every pin (twice is harmless)."""
        if self.closed:
            return
        self.closed = True
        for sensor in self.inputs.values():
            with contextlib.suppress(Exception):
                sensor.close()
        self.outputs.close()
