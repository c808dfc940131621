"""Serial ports and the MQTT broker: the ``serial:`` and ``mqtt:`` sections, and the
sensors that read from them."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway.config.base import Model, Name
from gateway.config.filters import Filtered
from gateway.config.hub import check_publish_topic
from gateway.config.types import Duration
from gateway.templates import check_template_tree


def check_topic_filter(topic: str) -> str:
    """An MQTT topic filter: ``+`` a whole level, ``#`` only as the last level."""
    parts = topic.split("/")
    bad_hash = any(p == "#" for p in parts[:-1]) or any("#" in p and p != "#" for p in parts)
    bad_plus = any("+" in p and p != "+" for p in parts)
    if not topic or bad_hash or bad_plus:
        raise ValueError("not a valid topic filter: + stands for one level, # only at the end")
    return topic


class SerialPort(Model):
    """A serial device that prints one reading per line (an Arduino, a sensor board)."""

    port: str = Field(
        description="Device path; prefer /dev/serial/by-id/... (stable across replugs)"
    )
    baudrate: int = Field(9600, gt=0, description="Bits per second")
    bytesize: Literal[5, 6, 7, 8] = Field(8, description="Data bits")
    parity: Literal["N", "E", "O", "M", "S"] = Field("N", description="N, E, O, M or S")
    stopbits: float = Field(1, description="Stop bits: 1, 1.5 or 2")
    format: Literal["json", "kv", "csv", "regex", "raw"] = Field(
        "json",
        description="json (an object per line), kv (temp=21.5 hum=40), csv (with fields), "
        "regex (with named groups), raw (the whole line)",
    )
    fields: list[str] | None = Field(None, description="csv: the column names, in order")
    pattern: str | None = Field(None, description="regex: a pattern with named groups")
    delimiter: str = Field("\n", min_length=1, description='Line end ("\\r\\n" also works)')
    max_line: int = Field(1024, ge=16, description="Longer lines are dropped with a warning")
    encoding: str = Field("utf-8", description="Text encoding of the lines")

    @field_validator("stopbits")
    @classmethod
    def _stopbits(cls, value: float) -> float:
        if value not in (1, 1.5, 2):
            raise ValueError("stopbits is 1, 1.5 or 2")
        return value

    @model_validator(mode="after")
    def _format_needs(self) -> SerialPort:
        if self.format == "csv" and not self.fields:
            raise ValueError("format csv needs fields: [name, ...]")
        if self.format == "regex":
            if not self.pattern:
                raise ValueError("format regex needs pattern")
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
            if not compiled.groupindex:
                raise ValueError("pattern needs named groups, e.g. (?P<temp>[0-9.]+)")
        return self


class SerialSensor(Filtered):
    """A value read from a serial port's lines."""

    serial: Name = Field(description="The port, from serial:")
    field: str | None = Field(
        None, description="Which field of a line (json key, kv key, csv column, regex group)"
    )
    kind: Literal["number", "text", "binary"] = Field(
        "number", description="What the values are: number, text or binary (on/off)"
    )

    @property
    def binary(self) -> bool:
        return self.kind == "binary"


class MqttTls(Model):
    ca: str | None = Field(None, description="CA certificate file (default: system CAs)")
    cert: str | None = Field(None, description="Client certificate file")
    key: str | None = Field(None, description="Client key file")
    insecure: bool = Field(False, description="Do not check the broker's certificate")


class MqttSection(Model):
    """The MQTT broker. The gateway runs its local rules without it."""

    host: str = Field("localhost", description="Broker host")
    port: int = Field(1883, gt=0, lt=65536, description="Broker port (8883 for TLS)")
    username: str | None = Field(None, description="User name")
    password: SecretStr | None = Field(None, description="Password")
    tls: MqttTls | bool = Field(False, description="true, or CA/client certificate settings")
    client_id: str | None = Field(
        None, description="Fixed client id (default: edge-gateway-NAME); keeps the session"
    )
    keepalive: int = Field(60, ge=5, description="Keepalive in seconds")
    version: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version")
    session_expiry: Duration = Field(
        7 * 86400.0,
        description="MQTT 5: how long the broker keeps our session (messages for us) while "
        "we are away",
    )
    base: str | None = Field(
        None,
        description="Topic prefix of everything this gateway publishes and takes commands "
        "on (one per gateway on a shared broker); default gateway/NAME",
    )
    status_topic: str | None = Field(
        None,
        description="Retained online/offline topic (last will); default BASE/status",
    )
    publish_states: bool = Field(
        False,
        description="Publish every sensor's and actuator's state, retained, to "
        "BASE/NAME/state on change (unavailable when it is)",
    )
    commands: bool = Field(
        False,
        description="Actuators take commands on BASE/NAME/set (each may say otherwise)",
    )

    @field_validator("base", "status_topic")
    @classmethod
    def _plain_topic(cls, topic: str | None) -> str | None:
        return check_publish_topic(topic) if topic is not None else None

    def base_topic(self, gateway: str) -> str:
        return self.base or f"gateway/{gateway}"

    def status(self, gateway: str) -> str:
        return self.status_topic or f"{self.base_topic(gateway)}/status"

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value


class MqttSensor(Filtered):
    """A value read from MQTT messages on a topic (wildcards + and # allowed)."""

    mqtt: str = Field(description="Topic filter, e.g. home/+/temperature")
    value: str | None = Field(
        None,
        description="Template over payload (JSON decoded when it parses) and topic; "
        "default: the whole payload",
    )
    kind: Literal["number", "text", "binary"] = Field(
        "text", description="What the values are: number, text or binary (on/off)"
    )
    qos: Literal[0, 1, 2] = Field(1, description="Subscription QoS (1: no loss)")
    split: bool = Field(
        False,
        description="A wildcard topic: one sensor per matched topic (NAME_LEVEL for the "
        "levels the wildcards matched, or as name: says), instead of one for all",
    )
    name: str | None = Field(
        None,
        description="With split: a template over topic and payload naming each member, "
        "e.g. \"{{ topic.split('/')[1] }}_temp\"",
    )

    @field_validator("mqtt")
    @classmethod
    def _topic_filter(cls, topic: str) -> str:
        return check_topic_filter(topic)

    @model_validator(mode="after")
    def _split(self) -> MqttSensor:
        if self.name is not None:
            check_template_tree(self.name)
        if self.splits and "+" not in self.mqtt and "#" not in self.mqtt:
            raise ValueError("split needs a wildcard topic (+ or #): one sensor per topic")
        return self

    @property
    def splits(self) -> bool:
        return self.split or self.name is not None

    @property
    def binary(self) -> bool:
        return self.kind == "binary"
