"""The MQTT side of sensors and actuators: their state topics, commands, and how
Home Assistant shows them (``mqtt.publish_states``, ``commands``, ``discovery``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from gateway.config.base import Model


def check_publish_topic(topic: str) -> str:
    """A topic (or prefix) to publish to: no wildcards, not empty; no trailing /."""
    if not topic or "+" in topic or "#" in topic:
        raise ValueError("a topic to publish to: no + or # wildcards, not empty")
    return topic.rstrip("/")


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
    state_class: Literal["measurement", "total", "total_increasing"] | None = Field(
        None, description="Home Assistant's state class (default measurement for numbers)"
    )


class ActuatorHub(Published):
    """What every actuator may do on MQTT."""

    commands: bool | None = Field(
        None,
        description="Take commands on BASE/NAME/set: on, off, toggle, a level, or JSON "
        '{"state": "on", "for": "30s"} (default: mqtt.commands)',
    )


class HomeAssistantSection(Model):
    """``homeassistant:``: announce the published devices with MQTT discovery."""

    discovery: bool = Field(
        True,
        description="Announce every published sensor and actuator (retained), and again "
        "when Home Assistant says online on PREFIX/status",
    )
    prefix: str = Field("homeassistant", description="Home Assistant's discovery prefix")
    configuration_url: str | None = Field(
        None,
        description="The device's link in Home Assistant (default: this gateway's API "
        "status, at its host name and port)",
    )

    @field_validator("prefix")
    @classmethod
    def _plain(cls, prefix: str) -> str:
        return check_publish_topic(prefix)
