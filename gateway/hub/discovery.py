"""Home Assistant MQTT discovery: one retained config per published device.

``PREFIX/COMPONENT/NODE/OBJECT/config`` with the keys Home Assistant's MQTT
integration documents for each component: on/off sensors are
``binary_sensor``, numbers and text ``sensor``, actuators that take
commands ``switch`` (a pwm output a dimmable ``light``), the others
``binary_sensor``. Each is available while the gateway's status topic says
``online`` and its own state is not ``unavailable``. An empty retained
payload removes one.
"""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.config.kernel import HwmonSensor, IioSensor, OneWireSensor, ThermalSensor
from gateway.config.models import GatewayConfig, GpioSensor, Sensor
from gateway.events import UNAVAILABLE
from gateway.hub.plan import NODE_SAFE, HubPlan

# Kernel channels in people's units: (unit, device class)
_IIO = {
    "temp": ("°C", "temperature"),
    "humidityrelative": ("%", "humidity"),
    "pressure": ("hPa", "atmospheric_pressure"),
}
_HWMON = {"temp": ("°C", "temperature"), "humidity": ("%", "humidity"), "in": ("V", "voltage")}
_GPIO_CLASS = {"motion": "motion"}
# unavailable is the entity's availability, not a state: the state turns to unknown
_NONE_WHEN_GONE = "{{ 'None' if value == '" + UNAVAILABLE + "' else value }}"
_ALIVE = "{{ 'offline' if value == '" + UNAVAILABLE + "' else 'online' }}"


def _unit_and_class(sensor: Sensor) -> tuple[str | None, str | None]:
    unit, device_class = None, None
    match sensor:
        case OneWireSensor() | ThermalSensor():
            unit, device_class = "°C", "temperature"
        case IioSensor():
            channel = sensor.channel.rstrip("0123456789")
            unit, device_class = _IIO.get(
                channel, ("V", "voltage") if channel == "voltage" else (None, None)
            )
        case HwmonSensor():
            channel = sensor.channel.rstrip("0123456789")
            unit, device_class = _HWMON.get(
                channel, ("rpm", None) if channel == "fan" else (None, None)
            )
        case GpioSensor():
            device_class = _GPIO_CLASS.get(sensor.kind)
        case _:
            pass
    return sensor.unit or unit, sensor.device_class or device_class


def _title(name: str) -> str:
    return name.replace("_", " ").replace("-", " ").strip().capitalize() or name


def _common(plan: HubPlan, name: str) -> dict[str, Any]:
    return {
        "name": _title(name),
        "unique_id": f"{plan.node}_{name}",
        "object_id": f"{plan.node}_{name}",
        "state_topic": plan.state_topic(name),
        "availability": [
            {
                "topic": plan.status,
                "payload_available": "online",
                "payload_not_available": "offline",
            },
            {"topic": plan.state_topic(name), "value_template": _ALIVE},
        ],
        "availability_mode": "all",
        "qos": 1,
        "device": {
            "identifiers": [f"edge-gateway-{plan.node}"],
            "name": plan.gateway,
            "manufacturer": "Edge Gateway",
            "model": "Edge Gateway",
            "sw_version": __version__,
            **({"configuration_url": plan.configuration_url} if plan.configuration_url else {}),
        },
        "origin": {"name": "Edge Gateway", "sw_version": __version__},
    }


def _sensor(plan: HubPlan, name: str, sensor: Sensor) -> tuple[str, dict[str, Any]]:
    config = _common(plan, name)
    unit, device_class = _unit_and_class(sensor)
    if device_class is not None:
        config["device_class"] = device_class
    if sensor.binary:
        config.update(payload_on="on", payload_off="off", value_template=_NONE_WHEN_GONE)
        return "binary_sensor", config
    config["value_template"] = _NONE_WHEN_GONE
    if sensor.state_class is not None:
        config["state_class"] = sensor.state_class
    elif (
        getattr(sensor, "kind", "number") in ("number", "virtual")
        and getattr(sensor, "type", "number") == "number"
    ):
        config["state_class"] = "measurement"
    if unit is not None:
        config["unit_of_measurement"] = unit
    return "sensor", config


def _actuator(plan: HubPlan, name: str) -> tuple[str, dict[str, Any]]:
    config = _common(plan, name)
    config["availability"] = config["availability"][:1]  # an output is never unavailable
    if name not in plan.commands:  # shown, not switched
        config.update(payload_on="on", payload_off="off")
        if name in plan.levels:
            config["value_template"] = "{{ 'on' if value | float(0) > 0 else 'off' }}"
        return "binary_sensor", config
    command = plan.command_topic(name)
    if name in plan.levels:  # the state topic carries the level 0..1
        config.update(
            command_topic=command,
            payload_on="on",
            payload_off="off",
            state_value_template="{{ 'on' if value | float(0) > 0 else 'off' }}",
            brightness_command_topic=command,
            brightness_scale=100,
            brightness_command_template="{{ (value / 100) | round(2) }}",
            brightness_state_topic=plan.state_topic(name),
            brightness_value_template="{{ (value | float(0) * 100) | round(0) | int }}",
            on_command_type="brightness",
        )
        return "light", config
    if name in plan.lights:  # an LED: an on/off light
        config.update(command_topic=command, payload_on="on", payload_off="off")
        return "light", config
    config.update(
        command_topic=command, payload_on="on", payload_off="off", state_on="on", state_off="off"
    )
    return "switch", config


def member_topic(plan: HubPlan, group: str, member: str) -> str:
    """A split sensor's member: its object id names the group, so a restart (which
    does not know the members until they report) keeps the announcement."""
    component = "binary_sensor" if plan.binary.get(group) else "sensor"
    object_id = NODE_SAFE.sub("_", f"{group}__{member}")
    return f"{plan.discovery_prefix}/{component}/{plan.node}/{object_id}/config"


def member_announcement(
    config: GatewayConfig, plan: HubPlan, group: str, member: str
) -> tuple[str, dict[str, Any]]:
    _, payload = _sensor(plan, member, config.sensors[group])
    return member_topic(plan, group, member), payload


def announcements(config: GatewayConfig, plan: HubPlan) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config, for every published device (none without discovery)."""
    if plan.discovery_prefix is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(plan.sensors - plan.groups):  # members: as they report
        component, payload = _sensor(plan, name, config.sensors[name])
        out[f"{plan.discovery_prefix}/{component}/{plan.node}/{name}/config"] = payload
    for name in sorted(plan.actuators):
        component, payload = _actuator(plan, name)
        out[f"{plan.discovery_prefix}/{component}/{plan.node}/{name}/config"] = payload
    return out
