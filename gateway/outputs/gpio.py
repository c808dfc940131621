"""GPIO outputs: relay modules, LEDs, any on/off load on a pin."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from gpiozero import DigitalOutputDevice

from gateway.config.models import GpioActuator
from gateway.errors import HardwareError

_LOG = logging.getLogger(__name__)


class GpioOutput:
    """One actuator on a GPIO pin.

    ``active_high: false`` is for boards that switch on when the pin is
    driven low: most cheap relay modules with an optocoupler. "on" always
    means the load is on, whatever the pin level.
    """

    def __init__(self, name: str, config: GpioActuator, factory: Any, state: bool) -> None:
        self.name = name
        self.config = config
        try:
            self.device = DigitalOutputDevice(
                config.gpio,
                active_high=config.active_high,
                initial_value=state,
                pin_factory=factory,
            )
        except Exception as exc:
            raise HardwareError(f"actuator {name!r} on GPIO {config.gpio}: {exc}") from exc

    @property
    def state(self) -> bool:
        return bool(self.device.is_active)

    def set(self, state: bool) -> None:
        if state:
            self.device.on()
        else:
            self.device.off()

    def close(self) -> None:
        self.device.close()


class GpioOutputs:
    """Every GPIO actuator, by name (an ``ActuatorBank`` for the runtime)."""

    def __init__(
        self,
        configs: dict[str, GpioActuator],
        factory: Any,
        states: dict[str, bool] | None = None,
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

    def get(self, name: str) -> bool:
        return self._outputs[name].state

    def set(self, name: str, state: bool) -> None:
        self._outputs[name].set(state)

    def states(self) -> dict[str, bool]:
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
