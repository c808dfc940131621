"""The config file as typed, frozen models.

Every option carries a description: it feeds ``gateway schema`` (editor
completion) and the documentation. No raw dict travels past ``config/``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config.alerts import AlertsSection
from gateway.config.base import Model, Name, secret_values
from gateway.config.connections import MqttSection, MqttSensor, SerialPort, SerialSensor
from gateway.config.filters import Filtered
from gateway.config.hub import ActuatorHub, HomeAssistantSection
from gateway.config.kernel import HwmonSensor, IioSensor, OneWireSensor, ThermalSensor
from gateway.config.outbound import SERVICE_URLS, Shape
from gateway.config.rules import (
    TAGGED_RULE_MODELS,
    Rule,
)
from gateway.config.server import ServerSection
from gateway.config.storage import HistorySection, OutboxSection
from gateway.config.types import BinaryState, Duration
from gateway.templates import check_template_tree

# --------------------------------------------------------------------------- gateway


class GatewaySection(Model):
    name: str = Field("edge-gateway", description="This gateway's name, shown in status and logs")
    state_dir: str = Field(
        "/var/lib/edge-gateway",
        description="Directory for the outbox database and persisted timers (relative paths "
        "are taken from the config file's directory)",
    )
    simulate: bool = Field(False, description="Use simulated GPIO pins: no hardware needed")
    sysfs: str = Field(
        "/sys", description="Where the kernel's sensor files are (1-Wire, thermal zones)"
    )
    timezone: str | None = Field(
        None,
        description="IANA time zone for time conditions and at: triggers, e.g. Europe/Berlin "
        "(default: the system's)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        import zoneinfo

        if name is not None:
            try:
                zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {name!r}: use e.g. Europe/Berlin") from None
        return name


class GpioSection(Model):
    pin_factory: Literal["auto", "lgpio", "rpigpio", "pigpio", "native", "mock"] = Field(
        "auto",
        description="gpiozero pin factory; auto prefers lgpio (the only one that works on a Pi 5)",
    )


# --------------------------------------------------------------------------- sensors

GpioPin = Annotated[int, Field(ge=0, le=27, description="BCM GPIO number (0-27)")]


class GpioSensor(Filtered):
    """A switch-like input on a GPIO pin: PIR motion sensor, push button, reed switch."""

    gpio: GpioPin
    kind: Literal["motion", "button", "digital"] = Field(
        "digital", description="motion (PIR), button, or digital (any on/off input)"
    )
    pull_up: bool | None = Field(
        None,
        description="Internal pull resistor: true = pull-up, false = pull-down. Default: "
        "pull-up for buttons (wired to ground), pull-down otherwise",
    )
    active_low: bool | None = Field(
        None, description="The input is on when the pin reads low. Default: same as pull_up"
    )
    bounce: Duration | None = Field(
        None,
        description="Debounce window: edges within it after a change are folded into one "
        "event. Default 50ms for buttons, none otherwise",
    )

    @property
    def pulled_up(self) -> bool:
        return self.pull_up if self.pull_up is not None else self.kind == "button"

    @property
    def is_active_low(self) -> bool:
        return self.active_low if self.active_low is not None else self.pulled_up

    @property
    def bounce_seconds(self) -> float:
        if self.bounce is not None:
            return self.bounce
        return 0.05 if self.kind == "button" else 0.0

    @property
    def binary(self) -> bool:
        return True


class VirtualSensor(Filtered):
    """A sensor with no hardware: its value is set through the API or in rule tests."""

    kind: Literal["virtual"] = Field(description="virtual: set through the HTTP API")
    type: Literal["binary", "number", "text"] = Field(
        "number", description="What values it takes: binary (on/off), number or text"
    )
    initial: bool | float | str | None = Field(None, description="Value at start-up")

    @property
    def binary(self) -> bool:
        return self.type == "binary"


def _sensor_tag(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("gpio", "serial", "mqtt", "onewire", "thermal", "iio", "hwmon"):
            if key in value:
                return key
        if value.get("kind") == "virtual":
            return "virtual"
    return "unknown"


Sensor = Annotated[
    Annotated[GpioSensor, Tag("gpio")]
    | Annotated[SerialSensor, Tag("serial")]
    | Annotated[MqttSensor, Tag("mqtt")]
    | Annotated[OneWireSensor, Tag("onewire")]
    | Annotated[ThermalSensor, Tag("thermal")]
    | Annotated[IioSensor, Tag("iio")]
    | Annotated[HwmonSensor, Tag("hwmon")]
    | Annotated[VirtualSensor, Tag("virtual")],
    Discriminator(
        _sensor_tag,
        custom_error_type="sensor_source",
        custom_error_message="a sensor needs a source: gpio: PIN, serial: PORT, mqtt: TOPIC, "
        "onewire: ID, thermal: ZONE, iio: DEVICE, hwmon: CHIP, or kind: virtual",
    ),
]


# --------------------------------------------------------------------------- actuators


class SwitchLimit(Model):
    switches: int = Field(ge=1, description="At most this many changes of state ...")
    per: Duration = Field(gt=0, description="... within this long")


class Protected(ActuatorHub):
    """What every actuator may have: what protects what it switches, and its MQTT side."""

    max_switches: SwitchLimit | None = Field(
        None,
        description="A switching rate limit ({switches: 6, per: 1m}): a change beyond it is "
        "refused and logged (a flapping rule cannot wear out a relay)",
    )

    interlock: list[Name] = Field(
        default_factory=list,
        description="Actuators never on together with this one (pump_in and pump_out): "
        "switching on while one of them is on is refused and logged",
    )
    min_on: Duration | None = Field(
        None,
        description="Once on, stay on at least this long (a compressor must not short-cycle); "
        "an off inside the window is deferred, not lost",
    )
    min_off: Duration | None = Field(
        None, description="Once off, stay off at least this long; an on inside it is deferred"
    )


class GpioActuator(Protected):
    """An output on a GPIO pin: a relay module, an LED, any on/off load."""

    gpio: GpioPin
    kind: Literal["relay", "led", "digital", "buzzer", "pwm"] = Field(
        "digital",
        description="relay, led, buzzer, digital (any on/off output) or pwm (a level 0..1: "
        "a dimmable LED, a fan)",
    )
    frequency: float = Field(100.0, gt=0, description="pwm: the frequency in Hz")
    active_high: bool = Field(
        True,
        description="false for boards that switch on when the pin is low (most cheap relay "
        "modules with an optocoupler)",
    )
    initial: BinaryState = Field(False, description="State at start-up")
    max_on: Duration | None = Field(
        None, description="Switch off after this long whatever the rules say (a safety limit)"
    )


class MqttActuator(Protected):
    """An output somewhere else, switched by an MQTT message (a smart plug, a siren)."""

    mqtt: str = Field(description="The topic to publish the state to")
    payload: str = Field(
        "{{ state }}", description="The message, a template over state (on/off) and actuator"
    )
    qos: Literal[0, 1, 2] = Field(1, description="QoS")
    retain: bool = Field(True, description="Retained, so the device gets it when it reconnects")
    initial: BinaryState = Field(False, description="State at start-up (published then)")
    max_on: Duration | None = Field(None, description="Switch off after this long")

    @property
    def kind(self) -> str:
        return "mqtt"


class SerialActuator(Protected):
    """An output on a serial device, switched by a command line."""

    serial: Name = Field(description="The port, from serial:")
    command: str = Field(
        "{{ state }}\n", description="What to write, a template over state and actuator"
    )
    initial: BinaryState = Field(False, description="State at start-up (written then)")
    max_on: Duration | None = Field(None, description="Switch off after this long")

    @property
    def kind(self) -> str:
        return "serial"


def _actuator_tag(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("gpio", "mqtt", "serial"):
            if key in value:
                return key
    return "unknown"


Actuator = Annotated[
    Annotated[GpioActuator, Tag("gpio")]
    | Annotated[MqttActuator, Tag("mqtt")]
    | Annotated[SerialActuator, Tag("serial")],
    Discriminator(
        _actuator_tag,
        custom_error_type="actuator_target",
        custom_error_message="an actuator needs a target: gpio: PIN, mqtt: TOPIC or serial: PORT",
    ),
]


# --------------------------------------------------------------------------- webhooks

DEFAULT_RETRY = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)

_WHSEC = re.compile(r"^whsec_[A-Za-z0-9+/=]+$")


def _check_whsec(secret: SecretStr) -> SecretStr:
    import base64
    import binascii

    text = secret.get_secret_value()
    if not _WHSEC.match(text):
        raise ValueError("a signing secret starts with whsec_ followed by base64")
    try:
        key = base64.b64decode(text.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("the part after whsec_ is not valid base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a signing secret's key should be 24 to 64 bytes (base64 after whsec_)")
    return secret


class WebhookEndpoint(Shape):
    """A receiver of outbound webhooks: signed Standard Webhooks by default, or any
    request shape (``format``, ``method``, ``service``: see ``config/outbound.py``)."""

    url: str = Field(
        description="The receiver's URL (http or https); its path may be a template. A "
        "service has a default (ntfy.sh, api.telegram.org, api.pushover.net)"
    )
    secret: SecretStr | list[SecretStr] | None = Field(
        None,
        description="whsec_... signing secret; a list signs with each (key rotation); "
        "with sign: github, the shared secret as it is",
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra request headers (e.g. Authorization)"
    )
    timeout: Duration = Field(15.0, gt=0, description="Whole request timeout")
    connect_timeout: Duration = Field(5.0, gt=0, description="TCP/TLS connect timeout")
    max_age: Duration = Field(
        72 * 3600.0, gt=0, description="Give up (dead letter) after trying for this long"
    )
    retry: tuple[Duration, ...] = Field(
        DEFAULT_RETRY, min_length=1, description="Delays between attempts (±20% jitter)"
    )
    concurrency: int = Field(1, ge=1, le=64, description="Requests in flight; 1 delivers in order")

    @field_validator("secret")
    @classmethod
    def _secret_kind(
        cls, secret: SecretStr | list[SecretStr] | None, info: ValidationInfo
    ) -> SecretStr | list[SecretStr] | None:
        """Standard Webhooks secrets are whsec_ keys (a github one is any text); the
        shape's keys come before this one, so ``info.data`` has them."""
        sign, service = info.data.get("sign"), info.data.get("service")
        standard = sign == "standard-webhooks" or (sign is None and service is None)
        if standard and secret is not None:
            for one in secret if isinstance(secret, list) else [secret]:
                _check_whsec(one)
        return secret

    @model_validator(mode="before")
    @classmethod
    def _service_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" not in data and data.get("service") in SERVICE_URLS:
            return {**data, "url": SERVICE_URLS[data["service"]]}
        return data

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s{]+", url):
            raise ValueError("url must start with http:// or https:// and name a host")
        check_template_tree(url)
        return url

    @property
    def secrets(self) -> list[str]:
        return secret_values(self.secret)


# --------------------------------------------------------------------------- outbox & server


# --------------------------------------------------------------------------- root


class GatewayConfig(Model):
    """The whole config file."""

    gateway: GatewaySection = Field(default_factory=GatewaySection)
    gpio: GpioSection = Field(default_factory=GpioSection)
    mqtt: MqttSection | None = Field(None, description="MQTT broker (optional)")
    serial: dict[Name, SerialPort] = Field(
        default_factory=dict, description="Serial ports, by name"
    )
    sensors: dict[Name, Sensor] = Field(default_factory=dict, description="Inputs, by name")
    actuators: dict[Name, Actuator] = Field(default_factory=dict, description="Outputs, by name")
    webhooks: dict[Name, WebhookEndpoint] = Field(
        default_factory=dict, description="Outbound webhook receivers, by name"
    )
    outbox: OutboxSection = Field(default_factory=OutboxSection)
    history: HistorySection = Field(default_factory=HistorySection)
    server: ServerSection = Field(default_factory=ServerSection)
    homeassistant: HomeAssistantSection | None = Field(
        None, description="Home Assistant MQTT discovery (needs mqtt:)"
    )
    alerts: AlertsSection | None = Field(
        None, description="Operational problems (dead letters, inputs down, ...) to a notify target"
    )
    rules: list[Rule] = Field(default_factory=list, description="Automation rules")


TAGGED_MODELS: dict[str, type[Model]] = {
    "gpio": GpioSensor,
    "serial": SerialSensor,
    "mqtt": MqttSensor,
    "virtual": VirtualSensor,
    **TAGGED_RULE_MODELS,
}
"""Union members by their tag, for error hints ("did you mean ...")."""
