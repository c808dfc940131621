"""Actuators behind MQTT or a serial port: switching one sends a message or a line."""

from __future__ import annotations

import json
import logging
from typing import Any

from gateway.config.models import MqttActuator, SerialActuator
from gateway.interfaces import Links
from gateway.templates import TemplateError, render

_LOG = logging.getLogger(__name__)


class LinkOutput:
    """The state is what we last sent: such devices cannot be read back."""

    def __init__(self, name: str, config: MqttActuator | SerialActuator, sender: Links) -> None:
        self.name = name
        self.config = config
        self.sender = sender
        self.state = bool(config.initial)

    def send(self) -> None:
        context = {"state": "on" if self.state else "off", "actuator": self.name}
        try:
            if isinstance(self.config, MqttActuator):
                payload = _text(render(self.config.payload, context))
                self.sender.publish(self.config.mqtt, payload, self.config.qos, self.config.retain)
            else:
                command = _text(render(self.config.command, context))
                self.sender.write_serial(self.config.serial, command)
        except TemplateError as exc:
            _LOG.error("actuator %s: %s", self.name, exc)

    def set(self, state: bool | float) -> None:
        self.state = bool(state)
        self.send()


def _text(value: Any) -> str:
    """A rendered template as text; a mapping or a list (JSON in the template) as JSON."""
    return value if isinstance(value, str) else json.dumps(value)
