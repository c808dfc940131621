"""The gateway's side of a shared broker: it publishes states, takes commands,
and keeps its Home Assistant announcements current.

A :class:`Hub` is an observer of the runtime (every sensor change and actuator
switch is published, retained, when the plan says so) and the MQTT link's
partner: at each connect it announces the devices and republishes every
state (the broker may have lost them), it applies commands through the
runtime (the same limits and audit line as a rule or the API), and it removes
announcements of devices this gateway no longer has.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from gateway.config.models import GatewayConfig
from gateway.events import UNAVAILABLE, Value
from gateway.hub.commands import CommandError, parse_command
from gateway.hub.discovery import announcements, member_announcement, member_topic
from gateway.hub.plan import NODE_SAFE, HubPlan, state_word
from gateway.interfaces import Links
from gateway.ratelog import RateLimitedLog
from gateway.rules.runtime import Runtime
from gateway.rules.traces import Trace

_LOG = logging.getLogger(__name__)
_BAD = RateLimitedLog(_LOG)


class Hub:
    """States out, commands in, announcements kept current, for one loaded config."""

    def __init__(self, config: GatewayConfig, links: Links) -> None:
        self.config = config
        self.plan = HubPlan.of(config)
        self.links = links
        self.configs = announcements(config, self.plan)  # discovery topic -> payload
        self._commands = self.plan.command_topics()
        self._filters = self.plan.discovery_filters()
        self.retained: dict[str, str] = {}  # state topic -> what the broker should hold
        self.runtime: Runtime | None = None
        self.commands = 0
        self.bad_commands = 0

    def attach(self, runtime: Runtime) -> None:
        """Start from what ``runtime`` knows now (values read at start, initial states)."""
        self.runtime = runtime
        for member, group in runtime.members.items():
            if group in self.plan.sensors:
                self._announce_member(member, group, publish=False)
        for sensor in sorted(self.plan.sensors | self._members()):
            if sensor in runtime.unavailable:
                self.retained[self.plan.state_topic(sensor)] = UNAVAILABLE
            elif (value := runtime.sensors.get(sensor)) is not None:
                self.retained[self.plan.state_topic(sensor)] = state_word(value)
        for actuator in sorted(self.plan.actuators):
            word = state_word(runtime.actuators.get(actuator))
            self.retained[self.plan.state_topic(actuator)] = word

    # ------------------------------------------------------------------ observer

    def sensor_changed(self, sensor: str, value: Value) -> None:
        group = self.runtime.members.get(sensor) if self.runtime is not None else None
        if group is not None and group in self.plan.sensors:
            self._announce_member(sensor, group, publish=True)
        elif sensor not in self.plan.sensors:
            return
        self._publish(self.plan.state_topic(sensor), state_word(value))

    def rule_traced(self, trace: Trace) -> None:
        """Traces are not published on MQTT."""

    def _members(self) -> set[str]:
        runtime = self.runtime
        return (
            {m for m, g in runtime.members.items() if g in self.plan.sensors} if runtime else set()
        )

    def _announce_member(self, member: str, group: str, publish: bool) -> None:
        """A split sensor's member, the first time it reports: announced like any sensor."""
        if self.plan.discovery_prefix is None:
            return
        if member_topic(self.plan, group, member) in self.configs:
            return
        topic, payload = member_announcement(self.config, self.plan, group, member)
        self.configs[topic] = payload
        if publish:
            self.links.publish(topic, json.dumps(payload, ensure_ascii=False), 1, True)

    def actuator_switched(self, actuator: str, state: bool | float, who: str) -> None:
        if actuator in self.plan.actuators:
            self._publish(self.plan.state_topic(actuator), state_word(state))

    def _publish(self, topic: str, payload: str) -> None:
        self.retained[topic] = payload
        self.links.publish(topic, payload, 1, True)

    # ------------------------------------------------------------------ the link

    def command_topics(self) -> Mapping[str, str]:
        return self._commands

    def discovery_filters(self) -> list[str]:
        return self._filters

    def on_connect(self) -> list[tuple[str, str]]:
        """What to publish (retained) at every connect: announcements, then states."""
        configs = [(t, json.dumps(p, ensure_ascii=False)) for t, p in self.configs.items()]
        return configs + list(self.retained.items())

    def seen(self, topic: str, payload: bytes) -> None:
        """Home Assistant's birth message (announce everything again), or a retained
        announcement under this gateway's node id: removed if it is not one of ours
        any more (a device renamed or deleted while the gateway was off)."""
        if topic == self.plan.birth_topic:
            if payload.strip() == b"online":
                _LOG.info("mqtt: Home Assistant is online: announcing again")
                for again, text in self.on_connect():
                    self.links.publish(again, text, 1, True)
            return
        object_id = topic.split("/")[-2]
        members = tuple(f"{NODE_SAFE.sub('_', group)}__" for group in self.plan.groups)
        if payload and topic not in self.configs and not object_id.startswith(members):
            device = object_id
            _LOG.info("mqtt: %s is gone from the config: its announcement removed", device)
            self.links.publish(topic, "", 1, True)
            if self.plan.state_topic(device) not in self.retained:
                self.links.publish(self.plan.state_topic(device), "", 1, True)

    def replaces(self, old: Hub) -> None:
        """After a reload: remove what ``old`` announced and this config does not have,
        then announce and publish everything again (retained: the same twice is a no-op)."""
        gone = (old.configs.keys() - self.configs.keys()) | (
            old.retained.keys() - self.retained.keys()
        )
        for topic in sorted(gone):
            self.links.publish(topic, "", 1, True)
        for topic, payload in self.on_connect():
            self.links.publish(topic, payload, 1, True)

    # ------------------------------------------------------------------ commands

    def command(self, actuator: str, payload: bytes, topic: str) -> None:
        """A message on ``BASE/ACTUATOR/set``: applied as the API would, then the state
        echoed; a payload that is not a command is counted and logged, never raised."""
        self.commands += 1
        runtime = self.runtime
        if runtime is None or actuator not in self.config.actuators:
            return
        try:
            command = parse_command(payload)
        except CommandError as exc:
            self.bad_commands += 1
            _BAD.warning("mqtt: %s: not a command (%s); ignored", topic[:120], exc)
            return
        limit = self.config.actuators[actuator].max_on
        if command.for_ is not None and limit is not None and command.for_ > limit:
            self.bad_commands += 1
            _BAD.warning(
                "mqtt: %s: for %gs is longer than max_on (%gs) of %s; ignored",
                topic,
                command.for_,
                limit,
                actuator,
            )
        else:
            before = runtime.actuators.get(actuator)
            runtime.actuate(actuator, command.state, command.for_, f"mqtt from {topic}")
            if runtime.actuators.get(actuator) != before:
                return  # published as it switched
        if actuator in self.plan.actuators:  # the echo: a switch that changed nothing
            self._publish(
                self.plan.state_topic(actuator), state_word(runtime.actuators.get(actuator))
            )
