"""GPIO outputs: relay modules, LEDs, any on/off load on a pin."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from gpiozero import DigitalOutputDevice, PWMOutputDevice

from gateway.config.models import GpioActuator
from gateway.errors import HardwareError

_LOG = logging.getLogger(__name__)


class GpioOutput:
    """One actuator on a GPIO pin.

    ``active_high: false`` is for boards that switch on when the pin is
    driven low: most cheap relay modules with an optocoupler. "on" always
    means the load is on, whatever the pin level.
    """

    def __init__(self, name: str, config: GpioActuator, factory: Any, state: bool | float) -> None:
        self.name = name
        self.config = config
        self.pwm = config.kind == "pwm"
        try:
            if self.pwm:
                self.device: Any = PWMOutputDevice(
                    config.gpio,
                    active_high=config.active_high,
                    initial_value=float(state),
                    frequency=config.frequency,
                    pin_factory=factory,
                )
            else:
                self.device = DigitalOutputDevice(
                    config.gpio,
                    active_high=config.active_high,
                    initial_value=bool(state),
                    pin_factory=factory,
                )
        except Exception as exc:
            raise HardwareError(f"actuator {name!r} on GPIO {config.gpio}: {exc}") from exc
        # on/off, or the level 0..1 of a pwm output: read back from the pin once
        # written, and kept (a switch asks for it several times, 3 us a read)
        self.state: bool | float = self._read()

    def _read(self) -> bool | float:
        if self.pwm:
            return round(float(self.device.value), 4)
        return bool(self.device.is_active)

    def set(self, state: bool | float) -> None:
        if self.pwm:
            self.device.value = min(max(float(state), 0.0), 1.0)
        elif state:
            self.device.on()
        else:
            self.device.off()
        self.state = self._read()

    def close(self) -> None:
        self.device.close()


class GpioOutputs:
    """Every GPIO actuator, by name (part of the ``ActuatorBank``)."""

    def __init__(
        self,
        configs: dict[str, GpioActuator],
        factory: Any,
        states: Mapping[str, bool | float] | None = None,
    ) -> None:
        self._outputs: dict[str, GpioOutput] = {}
        states = states or {}
        try:
            for name, config in configs.items():
                state = states.get(name, config.initial)
                self._outputs[name] = GpioOutput(name, config, factory, state)
        except HardwareError:
            self.close()
            raise

    def __iter__(self) -> Iterator[GpioOutput]:
        return iter(self._outputs.values())

    def names(self) -> Iterable[str]:
        return self._outputs.keys()

    def get(self, name: str) -> bool | float:
        return self._outputs[name].state

    def set(self, name: str, state: bool | float) -> None:
        self._outputs[name].set(state)

    def states(self) -> dict[str, bool | float]:
        return {name: out.state for name, out in self._outputs.items()}

    def safe_state(self) -> None:
        """Everything off: the state to leave the hardware in when we stop."""
        for output in self._outputs.values():
            try:
                output.set(False)
            except Exception as exc:
                _LOG.error("cannot switch %s off: %s", output.name, exc)

    def close(self) -> None:
        for output in self._outputs.values():
            try:
                output.close()
            except Exception as exc:
                _LOG.debug("closing %s: %s", output.name, exc)
        self._outputs.clear()
