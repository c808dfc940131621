"""The MQTT side of sensors and actuators: their state topics, commands, and how
Home Assistant shows them (``mqtt.publish_states``, ``commands``, ``discovery``)."""

from __future__ import annotations

from pydantic import Field

from gateway.config.base import Model


class Published(Model):
    """Whether a device's state goes to BASE/NAME/state."""

    publish_state: bool | None = Field(
        None,
        description="Publish its state, retained, to BASE/NAME/state on change (default: "
        "mqtt.publish_states)",
    )


class SensorHub(Published):
    """What every sensor may say about itself on MQTT."""

    unit: str | None = Field(
        None, max_length=20, description="Unit of its readings (°C, %, hPa): for Home Assistant"
    )
    device_class: str | None = Field(
        None,
        pattern=r"^[a-z0-9_]+$",
        description="Home Assistant's device class (temperature, humidity, door, ...)",
    )


class ActuatorHub(Published):
    """What every actuator may do on MQTT."""

    commands: bool | None = Field(
        None,
        description="Take commands on BASE/NAME/set: on, off, toggle, a level, or JSON "
        '{"state": "on", "for": "30s"} (default: mqtt.commands)',
    )
