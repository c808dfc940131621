"""Choosing gpiozero's pin factory: real pins on a Pi, mock pins anywhere else."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from gateway.errors import HardwareError

_LOG = logging.getLogger(__name__)

# name -> (module, class, what to install when it is missing)
_FACTORIES = {
    "lgpio": (
        "gpiozero.pins.lgpio",
        "LGPIOFactory",
        "sudo apt install python3-lgpio (or pip install lgpio)",
    ),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory", "sudo apt install python3-rpi.gpio"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory", "sudo apt install python3-pigpio pigpiod"),
    "native": ("gpiozero.pins.native", "NativeFactory", "nothing (it ships with gpiozero)"),
}
AUTO_ORDER = ("lgpio", "rpigpio", "pigpio", "native")


def make_pin_factory(name: str, simulate: bool) -> Any:
    """A gpiozero pin factory. ``simulate`` (or ``name == "mock"``) gives mock pins.

    ``auto`` tries lgpio first: it is the only one that works on a Pi 5.
    """
    if simulate or name == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        return MockFactory(pin_class=MockPWMPin)
    names = AUTO_ORDER if name == "auto" else (name,)
    failures = []
    for candidate in names:
        module_name, class_name, install = _FACTORIES[candidate]
        try:
            module = importlib.import_module(module_name)
            factory = getattr(module, class_name)()
        except ImportError as exc:
            failures.append(f"{candidate}: not installed ({exc}); install: {install}")
        except Exception as exc:  # no GPIO chip, not a Pi, no permission, ...
            failures.append(f"{candidate}: {exc}")
        else:
            _LOG.info("GPIO pin factory: %s", candidate)
            return factory
    raise HardwareError(
        "no GPIO pin factory could be started:\n  "
        + "\n  ".join(failures)
        + "\n(not on a Raspberry Pi? run with --simulate)"
    )
