"""Every actuator of a config behind one object (the runtime's ``Actuators``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.config.models import GpioActuator, MqttActuator, SerialActuator
from gateway.interfaces import Links
from gateway.outputs.gpio import GpioOutputs
from gateway.outputs.remote import LinkOutput

_LOG = logging.getLogger(__name__)

State = bool | float


class ActuatorBank:
    """GPIO outputs and MQTT/serial outputs, by name."""

    def __init__(
        self,
        configs: Mapping[str, Any],
        factory: Any,
        sender: Links,
        states: Mapping[str, bool | float] | None = None,
    ) -> None:
        gpio = {n: c for n, c in configs.items() if isinstance(c, GpioActuator)}
        self.gpio = GpioOutputs(gpio, factory, states)
        self.links = {
            name: LinkOutput(name, config, sender)
            for name, config in configs.items()
            if isinstance(config, MqttActuator | SerialActuator)
        }
        for name, output in self.links.items():
            if states and name in states:
                output.state = bool(states[name])

    def names(self) -> Iterable[str]:
        return [*self.gpio.names(), *self.links]

    def get(self, name: str) -> State:
        if name in self.links:
            return self.links[name].state
        return self.gpio.get(name)

    def set(self, name: str, state: State) -> None:
        if name in self.links:
            self.links[name].set(state)
        else:
            self.gpio.set(name, state)

    def states(self) -> dict[str, State]:
        return {**self.gpio.states(), **{n: o.state for n, o in self.links.items()}}

    def announce(self) -> None:
        """Publish every MQTT actuator's state (at start: a retained "on" from before
        a crash would otherwise keep the real device on while we say off)."""
        for output in self.links.values():
            if isinstance(output.config, MqttActuator):
                output.send()

    def safe_state(self) -> None:
        self.gpio.safe_state()
        for name, output in self.links.items():
            if output.state:
                output.set(False)
                _LOG.info("%s off (the safe state at a stop)", name)

    def close(self) -> None:
        self.gpio.close()
