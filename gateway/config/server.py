"""The ``server:`` section: where the HTTP API listens and who may call it."""

from __future__ import annotations

import base64
import ipaddress
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from gateway.config.base import Model, Name, secret_values
from gateway.config.types import Duration

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an address or network (e.g. 192.168.1.0/24)") from None
    return value


NetworkText = Annotated[str, AfterValidator(_network)]


def _long_enough(secret: SecretStr) -> SecretStr:
    if len(secret.get_secret_value()) < 16:
        raise ValueError("must be at least 16 characters long")
    return secret


LongSecret = Annotated[SecretStr, AfterValidator(_long_enough)]


class TokenConfig(Model):
    token: LongSecret = Field(description="The bearer token (at least 16 characters)")
    actuators: list[Name] | None = Field(
        None,
        description="Actuators this token may switch (default: all, or none when sensors is given)",
    )
    sensors: list[Name] | None = Field(
        None,
        description="Sensors this token may set (default: all, or none when actuators is given)",
    )
    outbox: bool | None = Field(
        None,
        description="Whether it may read the outbox and retry or re-enable messages (default: "
        "yes, or no when actuators or sensors is given)",
    )
    read_only: bool = Field(False, description="Only GET requests")


class HookConfig(Model):
    """An inbound webhook, ``POST /hooks/NAME``, firing rules with ``when: {hook: NAME}``."""

    verify: Literal["standard-webhooks", "github", "token"] = Field(
        description="standard-webhooks (webhook-id/-timestamp/-signature), github "
        "(X-Hub-Signature-256) or token (a shared secret in a header)"
    )
    secret: LongSecret | list[LongSecret] | None = Field(
        None,
        description="The signing secret (whsec_... for standard-webhooks); a list accepts "
        "any of them (rotation)",
    )
    token: LongSecret | None = Field(None, description="For verify: token")
    header: str = Field(
        "Authorization",
        description="For verify: token, the header carrying it (Authorization takes "
        "'Bearer <token>')",
    )
    headers: list[str] = Field(
        default_factory=list,
        description="Request headers templates may read as event.headers (e.g. X-GitHub-Event)",
    )
    schema_: dict[str, Any] | None = Field(
        None,
        alias="schema",
        description="A JSON Schema the body must match (422 naming the field otherwise), "
        'e.g. {type: object, required: [door]} (quote "on" and "off" in it: YAML reads '
        "them as true and false)",
    )

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            from jsonschema import Draft202012Validator, SchemaError  # only for hook schemas

            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                where = "/".join(str(p) for p in exc.absolute_path)
                raise ValueError(
                    f"not a valid JSON Schema: {f'{where}: ' if where else ''}{exc.message}"
                ) from None
        return schema

    @cached_property
    def validator(self) -> Draft202012Validator | None:
        """Checks bodies against ``schema`` (None: any JSON is accepted)."""
        if self.schema_ is None:
            return None
        from jsonschema import Draft202012Validator

        return Draft202012Validator(self.schema_)

    @model_validator(mode="after")
    def _credentials(self) -> HookConfig:
        if self.verify == "token" and self.token is None:
            raise ValueError("verify: token needs token")
        if self.verify != "token" and self.secret is None:
            raise ValueError(f"verify: {self.verify} needs secret")
        if self.verify == "standard-webhooks":
            for secret in self.secrets:
                if not secret.startswith("whsec_"):
                    raise ValueError("a standard-webhooks secret starts with whsec_")
                try:
                    base64.b64decode(secret.removeprefix("whsec_"), validate=True)
                except ValueError:
                    raise ValueError(
                        "a standard-webhooks secret is whsec_ followed by base64 "
                        "(e.g. from: openssl rand -base64 32)"
                    ) from None
        return self

    @property
    def secrets(self) -> list[str]:
        return secret_values(self.secret)

    @property
    def credential_header(self) -> str:
        """The header that carries what proves the sender (failures are limited by it)."""
        if self.verify == "standard-webhooks":
            return "webhook-signature"
        return "X-Hub-Signature-256" if self.verify == "github" else self.header


class TlsConfig(Model):
    cert: str = Field(description="PEM certificate (chain) file")
    key: str = Field(description="PEM private key file")


class RateLimit(Model):
    requests: int = Field(600, ge=1, description="Requests allowed per client ...")
    per: Duration = Field(60.0, gt=0, description="... in this window")


class ServerSection(Model):
    listen: str = Field(
        "127.0.0.1:8080", description="HOST:PORT to listen on; non-loopback requires tokens"
    )
    tokens: dict[Name, TokenConfig] = Field(
        default_factory=dict, description="Bearer tokens for /api/v1, by client name"
    )
    hooks: dict[Name, HookConfig] = Field(
        default_factory=dict, description="Inbound webhooks (POST /hooks/NAME), by name"
    )
    tls: TlsConfig | None = Field(None, description="Serve HTTPS with this certificate")
    allow: list[NetworkText] | None = Field(
        None, description="Client addresses or networks allowed to connect (default: all)"
    )
    trusted_proxies: list[NetworkText] = Field(
        default_factory=list,
        description="Reverse proxies whose X-Forwarded-For names the real client",
    )
    rate_limit: RateLimit = Field(
        default_factory=RateLimit,
        description="Requests per client (429 beyond)",
    )
    failed_auth: RateLimit = Field(
        default_factory=lambda: RateLimit(requests=10, per=60.0),
        description="Failed verifications (bad token, bad hook signature) allowed per client "
        "before it is blocked for the rest of the window (429)",
    )
    max_in_flight: int = Field(
        64,
        ge=1,
        description="Requests handled at once (503 beyond), counted apart for authenticated "
        "API calls and for the rest (hooks); one client may hold a quarter of the rest",
    )
    body_timeout: Duration = Field(
        10.0, gt=0, description="A request body must arrive within this long (408 otherwise)"
    )
    replay_window: Duration = Field(
        7 * 86400.0,
        gt=0,
        description="A hook delivery id seen within this long is answered as a duplicate "
        "and not acted on again",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        _, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("listen must be HOST:PORT, e.g. 127.0.0.1:8080")
        return listen

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
