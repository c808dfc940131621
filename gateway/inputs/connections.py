"""The long-running connections (serial ports, the MQTT broker) of one config."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import safejson
from gateway.config.connections import MqttSensor, SerialSensor
from gateway.config.kernel import KernelSensor
from gateway.config.models import GatewayConfig
from gateway.config.rules import MqttTrigger
from gateway.events import MqttReceived, Value
from gateway.inputs import OnLost, nothing_lost
from gateway.inputs.kernel import KernelInput
from gateway.ratelog import RateLimitedLog

if TYPE_CHECKING:  # imported when a config has them: aiomqtt and pyserial cost RSS
    from gateway.inputs.mqtt import Commits, MqttLink
    from gateway.inputs.serial import SerialInput

_LOG = logging.getLogger(__name__)
_BAD_FIELD = RateLimitedLog(_LOG)


class Connections:
    """Serial inputs and the MQTT link; also the runtime's ``Links`` for publishing."""

    def __init__(
        self,
        config: GatewayConfig,
        on_reading: Callable[[str, Value, str], None],
        on_mqtt: Callable[[MqttReceived], None],
        commits: Commits | None = None,
        on_lost: OnLost = nothing_lost,
        on_member: Callable[[str, str, Value], None] | None = None,
    ) -> None:
        trigger_topics = sorted(
            {t.mqtt for rule in config.rules for t in rule.when if isinstance(t, MqttTrigger)}
        )
        self.serial: dict[str, SerialInput] = {}
        if config.serial:
            from gateway.inputs.serial import SerialInput
        for port_name, port in config.serial.items():
            wanted = {
                name: sensor.field
                for name, sensor in config.sensors.items()
                if isinstance(sensor, SerialSensor) and sensor.serial == port_name
            }
            reading = partial(_report, on_reading, config, f"serial:{port_name}")
            self.serial[port_name] = SerialInput(port_name, port, wanted, reading, on_lost)
        sysfs = Path(config.gateway.sysfs)
        self.kernel = {
            name: KernelInput(name, sensor, sysfs, partial(_polled, on_reading), on_lost)
            for name, sensor in config.sensors.items()
            if isinstance(sensor, KernelSensor)
        }
        self.mqtt: MqttLink | None = None
        if config.mqtt is not None:
            from gateway.inputs.mqtt import MqttLink

            sensors = {name: s for name, s in config.sensors.items() if isinstance(s, MqttSensor)}
            self.mqtt = MqttLink(
                config.mqtt,
                config.gateway.name,
                sensors,
                trigger_topics,
                lambda sensor, value: on_reading(sensor, value, "mqtt"),
                lambda topic, payload: on_mqtt(MqttReceived(topic, payload, time.time())),
                commits,
                on_lost,
                on_member,
            )

    async def run(self) -> None:
        """Keep every connection up until cancelled."""
        async with asyncio.TaskGroup() as group:
            for port in self.serial.values():
                group.create_task(port.run(), name=f"serial:{port.name}")
            for sensor in self.kernel.values():
                group.create_task(sensor.run(), name=f"{sensor.source}:{sensor.name}")
            if self.mqtt is not None:
                group.create_task(self.mqtt.run(), name="mqtt")

    async def flush(self) -> None:
        """Let the last MQTT publishes and serial writes leave (the caller bounds the wait)."""
        outputs = [port.flush() for port in self.serial.values()]
        if self.mqtt is not None:
            outputs.append(self.mqtt.flush())
        await asyncio.gather(*outputs, return_exceptions=True)

    def states(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, port in self.serial.items():
            out[f"serial:{name}"] = {
                "type": "serial",
                "state": port.state,
                "port": port.config.port,
                "lines": port.lines,
                "malformed": port.malformed,
                "reconnects": port.reconnects,
            }
        for name, sensor in self.kernel.items():
            out[name] = sensor.describe()
        if self.mqtt is not None:
            out["mqtt"] = {
                "type": "mqtt",
                "state": self.mqtt.state,
                "broker": f"{self.mqtt.config.host}:{self.mqtt.config.port}",
                "messages": self.mqtt.messages,
                "bad_values": self.mqtt.bad_values,
                "malformed": self.mqtt.malformed,
                "reconnects": self.mqtt.reconnects,
            }
        return out

    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> None:
        if self.mqtt is None:
            _LOG.error("no mqtt: section: %s not published", topic)
            return
        self.mqtt.publish(topic, payload, qos, retain)

    def write_serial(self, port: str, data: str) -> None:
        target = self.serial.get(port)
        if target is None:
            _LOG.error("no serial port %s", port)
            return
        try:
            target.write(data)
        except OSError as exc:
            _LOG.error("serial_write to %s failed: %s", port, exc)


def _polled(on_reading: Callable[[str, Value, str], None], sensor: str, value: float) -> None:
    on_reading(sensor, value, "kernel")


def _report(
    on_reading: Callable[[str, Value, str], None],
    config: GatewayConfig,
    source: str,
    sensor: str,
    value: Value,
) -> None:
    typed = _typed(value, config.sensors[sensor])
    if typed is None:
        _BAD_FIELD.warning(
            "%s: sensor %s: %r is not a %s reading; ignored",
            source,
            sensor,
            str(value)[:80],
            getattr(config.sensors[sensor], "kind", "number"),
        )
        return
    on_reading(sensor, typed, source)


def _typed(value: Value, sensor: Any) -> Value | None:
    """A serial field as the sensor's kind wants it (numbers stay numbers); None if it
    cannot be one (text, ``nan`` or ``inf`` for a number)."""
    kind = getattr(sensor, "kind", "number")
    if kind == "text":
        return str(value)
    if kind == "binary":
        from gateway.config.types import parse_binary

        try:
            return parse_binary(value)
        except ValueError:
            return value
    if kind == "number" and (isinstance(value, bool | str) or not safejson.finite(value)):
        return None
    return value
