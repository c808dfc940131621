"""GPIO inputs: PIR motion sensors, buttons, reed switches, any on/off signal.

gpiozero calls us on its own thread (lgpio's single notification thread on
a Pi). The callbacks there are tiny and never raise: an exception in one
would silently end edge detection for every pin. They only hand the edge to
the event loop, where debouncing and rules run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice

from gateway.config.models import GpioSensor
from gateway.errors import HardwareError

_LOG = logging.getLogger(__name__)

OnValue = Callable[[str, bool], None]


class GpioInput:
    """One sensor on a GPIO pin, debounced on the event loop.

    Debouncing is ours, not the pin factory's (lgpio delays every edge,
    RPi.GPIO drops edges, mock pins ignore it): the first edge is reported at
    once, further edges within ``bounce`` are folded, and when the window
    ends the pin is read again so a final change is never lost.
    """

    def __init__(
        self,
        name: str,
        config: GpioSensor,
        factory: Any,
        loop: asyncio.AbstractEventLoop,
        on_value: OnValue,
    ) -> None:
        self.name = name
        self.config = config
        self._loop = loop
        self._on_value = on_value
        self._bounce = config.bounce_seconds
        self._window: asyncio.TimerHandle | None = None
        try:
            self.device = DigitalInputDevice(
                config.gpio,
                pull_up=None,
                active_state=not config.is_active_low,
                pin_factory=factory,
            )
            self.device.pin.pull = "up" if config.pulled_up else "down"
        except Exception as exc:
            raise HardwareError(f"sensor {name!r} on GPIO {config.gpio}: {exc}") from exc
        self.value = bool(self.device.is_active)
        self.device.when_activated = self._activated
        self.device.when_deactivated = self._deactivated

    # These two run on gpiozero's thread: hand over and return, never raise.
    def _activated(self) -> None:
        self._hand_over(True)

    def _deactivated(self) -> None:
        self._hand_over(False)

    def _hand_over(self, active: bool) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are stopping
            self._loop.call_soon_threadsafe(self._edge, active)

    def _edge(self, active: bool) -> None:
        if self._window is not None:
            return  # inside the bounce window: read again when it ends
        self._report(active)

    def _report(self, active: bool) -> None:
        if active != self.value:
            self.value = active
            self._on_value(self.name, active)
        if self._bounce > 0:
            self._window = self._loop.call_later(self._bounce, self._settle)

    def _settle(self) -> None:
        self._window = None
        try:
            current = bool(self.device.is_active)
        except Exception as exc:  # a closed device during shutdown
            _LOG.debug("sensor %s: cannot read pin: %s", self.name, exc)
            return
        if current != self.value:
            self._report(current)

    def simulate(self, active: bool) -> None:
        """Drive the mock pin as the wired sensor would (simulation only)."""
        pin = self.device.pin
        if not hasattr(pin, "drive_high"):
            raise HardwareError(f"sensor {self.name!r} is real hardware: it cannot be simulated")
        level_high = active != self.config.is_active_low
        if level_high:
            pin.drive_high()
        else:
            pin.drive_low()

    def close(self) -> None:
        if self._window is not None:
            self._window.cancel()
            self._window = None
        self.device.when_activated = None
        self.device.when_deactivated = None
        self.device.close()
