"""Which sensors and actuators are published, which take commands, and their topics.

Everything lives under the gateway's ``base`` (default ``gateway/NAME``):
``BASE/status`` (online/offline, the last will), ``BASE/DEVICE/state``
(retained) and ``BASE/ACTUATOR/set``. Payloads are the API's words: ``on`` and
``off``, numbers as JSON writes them, a pwm level, ``unavailable``.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config.connections import MqttSensor
from gateway.config.models import GatewayConfig, GpioActuator
from gateway.events import Value

NODE_SAFE = re.compile(r"[^a-zA-Z0-9_-]")  # what a discovery topic level may hold


def state_word(value: Value | None) -> str:
    """A state as its topic carries it (None: nothing read yet, published as nothing)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return json.dumps(value)
    return str(value)


@dataclass(frozen=True)
class HubPlan:
    """The MQTT side of one config (empty when there is no ``mqtt:`` section)."""

    gateway: str
    base: str
    status: str
    discovery_prefix: str | None  # None: no discovery
    sensors: frozenset[str]  # published
    actuators: frozenset[str]  # published
    commands: frozenset[str]  # take commands (always published too: the echo)
    levels: frozenset[str]  # pwm actuators: a level, not on/off
    groups: frozenset[str] = frozenset()  # split MQTT sensors: their members are published
    binary: Mapping[str, bool] = field(default_factory=dict)  # on/off sensors
    lights: frozenset[str] = frozenset()  # LEDs: on/off lights in Home Assistant
    configuration_url: str | None = None

    @classmethod
    def of(cls, config: GatewayConfig) -> HubPlan:
        name = config.gateway.name
        mqtt = config.mqtt
        if mqtt is None:
            return cls(name, "", "", None, frozenset(), frozenset(), frozenset(), frozenset())
        assistant = config.homeassistant
        discovery = assistant is not None and assistant.discovery
        default = mqtt.publish_states or discovery
        sensors = {
            n
            for n, s in config.sensors.items()
            if (s.publish_state is None and default) or s.publish_state
        }
        commands = {
            n
            for n, a in config.actuators.items()
            if (a.commands if a.commands is not None else mqtt.commands)
        }
        actuators = {
            n
            for n, a in config.actuators.items()
            if (a.publish_state is None and default) or a.publish_state or n in commands
        }
        levels = {
            n
            for n, a in config.actuators.items()
            if isinstance(a, GpioActuator) and a.kind == "pwm"
        }
        groups = {n for n, s in config.sensors.items() if isinstance(s, MqttSensor) and s.splits}
        return cls(
            name,
            mqtt.base_topic(name),
            mqtt.status(name),
            assistant.prefix if assistant is not None and discovery else None,
            frozenset(sensors),
            frozenset(actuators),
            frozenset(commands),
            frozenset(levels),
            frozenset(groups),
            {n: s.binary for n, s in config.sensors.items()},
            frozenset(n for n, a in config.actuators.items() if getattr(a, "kind", "") == "led"),
            _configuration_url(config) if discovery else None,
        )

    @property
    def node(self) -> str:
        """The gateway's node id in discovery topics (a topic level, no wildcards)."""
        return NODE_SAFE.sub("_", self.gateway)

    def state_topic(self, device: str) -> str:
        return f"{self.base}/{device}/state"

    def command_topic(self, actuator: str) -> str:
        return f"{self.base}/{actuator}/set"

    def command_topics(self) -> dict[str, str]:
        """Topic -> actuator, for the subscriptions."""
        return {self.command_topic(a): a for a in sorted(self.commands)}

    def discovery_filters(self) -> list[str]:
        """Every discovery config this gateway may have left on the broker, and Home
        Assistant's own status (its birth message asks for the announcements again)."""
        if self.discovery_prefix is None:
            return []
        return [f"{self.discovery_prefix}/+/{self.node}/+/config", self.birth_topic]

    @property
    def birth_topic(self) -> str:
        return f"{self.discovery_prefix}/status"


def _configuration_url(config: GatewayConfig) -> str:
    """The device's link in Home Assistant: as configured, or the API status at this
    gateway's address (its host name when it listens on every interface)."""
    assistant = config.homeassistant
    if assistant is not None and assistant.configuration_url:
        return assistant.configuration_url
    server = config.server
    host = socket.gethostname() if server.host in ("0.0.0.0", "::", "") else server.host
    scheme = "https" if server.tls is not None else "http"
    return f"{scheme}://{host}:{server.port}/api/v1/status"
