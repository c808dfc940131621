"""Which sensors and actuators are published, which take commands, and their topics.

Everything lives under the gateway's ``base`` (default ``gateway/NAME``):
``BASE/status`` (online/offline, the last will), ``BASE/DEVICE/state``
(retained) and ``BASE/ACTUATOR/set``. Payloads are the API's words: ``on`` and
``off``, numbers as JSON writes them, a pwm level, ``unavailable``.
"""

from __future__ import annotations

import json
import re
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

    @classmethod
    def of(cls, config: GatewayConfig) -> HubPlan:
        name = config.gateway.name
        mqtt = config.mqtt
        if mqtt is None:
            return cls(name, "", "", None, frozenset(), frozenset(), frozenset(), frozenset())
        default = mqtt.publish_states or mqtt.discovery
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
            mqtt.discovery_prefix if mqtt.discovery else None,
            frozenset(sensors),
            frozenset(actuators),
            frozenset(commands),
            frozenset(levels),
            frozenset(groups),
            {n: s.binary for n, s in config.sensors.items()},
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

    def discovery_filter(self) -> str | None:
        """Every discovery config this gateway may have left on the broker."""
        if self.discovery_prefix is None:
            return None
        return f"{self.discovery_prefix}/+/{self.node}/+/config"
