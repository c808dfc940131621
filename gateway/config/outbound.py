"""The shape of an outbound request, per endpoint: method, URL, headers and body
(``format``), how it is signed (``sign``), and ready presets for the services
people notify (``service``), with the ``notify:`` action that feeds them.

``format: standard`` is the Standard Webhooks envelope (the default); ``json``
sends a templated mapping, ``text`` a templated string, ``form`` urlencoded
fields. Templates see ``event`` (the type), ``data``, ``id`` and ``timestamp``.
The request is rendered once, when it is queued, and stored: a retry sends
the same bytes.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from gateway.config.base import Model, Name
from gateway.templates import check_template_tree

SERVICE_URLS = {
    "ntfy": "https://ntfy.sh",
    "telegram": "https://api.telegram.org",
    "pushover": "https://api.pushover.net",
}
NEEDS = {  # what each service must be given
    "ntfy": ("topic",),
    "slack": (),
    "telegram": ("token", "chat_id"),
    "pushover": ("token", "user"),
    "homeassistant": ("webhook_id",),
}


def _templates(value: Any) -> Any:
    check_template_tree(value)
    return value


_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.S)
_TAG = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.S)


def _json_shaped(body: str) -> None:
    """A text body sent as JSON must be JSON whatever its expressions give: with each
    ``{{ ... }}`` as a number (and tags left out), it has to parse."""
    sample = _EXPRESSION.sub("0", _TAG.sub("", body))
    try:
        json.loads(sample)
    except ValueError as exc:
        where = ""
        if isinstance(exc, json.JSONDecodeError):
            where = f" at line {exc.lineno} column {exc.colno}"
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ValueError(f"body can never be valid JSON{where}: {message}") from None


class Shape(Model):
    """How an endpoint's requests look (every key optional: the default is a signed
    Standard Webhooks POST)."""

    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = Field(
        "POST", description="The HTTP method"
    )
    format: Literal["standard", "json", "text", "form"] = Field(
        "standard",
        description="standard (the Standard Webhooks envelope), json (body: a templated "
        "mapping), text (body: a templated string), form (body: urlencoded fields)",
    )
    body: Annotated[Any, AfterValidator(_templates)] = Field(
        None, description="json/form: a mapping (strings may be templates); text: a template"
    )
    content_type: str | None = Field(
        None, description="text: the content type (default text/plain; charset=utf-8)"
    )
    sign: Literal["standard-webhooks", "github", "none"] | None = Field(
        None,
        description="standard-webhooks (webhook-signature; the default with a secret), "
        "github (X-Hub-Signature-256 over the body, with the secret as it is), none",
    )
    service: Literal["ntfy", "slack", "telegram", "pushover", "homeassistant"] | None = Field(
        None,
        description="A ready request for a notification service, fed by notify: actions",
    )
    topic: str | None = Field(None, description="ntfy: the topic")
    token: SecretStr | None = Field(
        None, description="ntfy: an access token; telegram: the bot token; pushover: the app token"
    )
    chat_id: str | int | None = Field(None, description="telegram: the chat to send to")
    user: SecretStr | None = Field(None, description="pushover: the user (or group) key")
    webhook_id: str | None = Field(None, description="homeassistant: the webhook trigger's id")

    @model_validator(mode="after")
    def _consistent(self) -> Shape:
        if self.service is not None:
            missing = [key for key in NEEDS[self.service] if getattr(self, key) is None]
            if missing:
                raise ValueError(f"service {self.service} needs {', '.join(missing)}")
            if self.format != "standard" or self.body is not None:
                raise ValueError("a service has its own format and body: leave them out")
        elif self.format == "text" and not isinstance(self.body, str):
            raise ValueError("format text needs body: a string (a template)")
        elif self.format == "text" and "json" in (self.content_type or ""):
            _json_shaped(str(self.body))
        elif self.format in ("json", "form") and self.body is None:
            raise ValueError(f"format {self.format} needs body: a mapping")
        elif self.format == "form" and not isinstance(self.body, dict):
            raise ValueError("format form needs body: a mapping of field names to values")
        elif self.format == "standard" and self.body is not None:
            raise ValueError("format standard sends the envelope: body is for json, text, form")
        return self

    @property
    def shaped(self) -> bool:
        """Whether requests are rendered from this shape (not the standard envelope)."""
        return self.format != "standard" or self.service is not None or self.method != "POST"

    @property
    def signing(self) -> str:
        if self.sign is not None:
            return self.sign
        return "standard-webhooks" if self.service is None else "none"


class NotifyAction(Model):
    """Sends a notification through an endpoint with a ``service`` (ntfy, Slack, ...):
    queued in the outbox like any webhook, so it arrives after an outage too."""

    notify: Name = Field(description="The endpoint, from webhooks: (one with service:)")
    message: Annotated[str, AfterValidator(_templates)] = Field(description="The text (a template)")
    title: Annotated[str | None, AfterValidator(_templates)] = Field(
        None, description="A title (a template), where the service has one"
    )
    priority: Literal["min", "low", "default", "high", "urgent"] = Field(
        "default", description="Where the service has priorities (ntfy, Pushover)"
    )
    tags: list[str] = Field(
        default_factory=list, description="ntfy: tags or emoji short codes (warning, skull)"
    )
