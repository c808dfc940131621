"""Rendering a shaped endpoint's request once, when it is queued, and finishing it
(secrets, signatures) each time it is sent.

What is stored is the body, byte for byte, and the method, URL, content type
and templated headers; a retry sends exactly that. Secrets never reach the
database: a preset's token is a placeholder (``@@token@@``) in the stored URL
or body, filled in at send time, as the endpoint's static headers are. The
presets follow each service's documented API:

- ntfy: ``POST`` of JSON to the server root (``topic``, ``message``,
  ``title``, ``priority`` 1-5, ``tags``), ``Authorization: Bearer`` with a token.
- Slack-compatible incoming webhooks (Slack, Mattermost, Discord's ``/slack``):
  ``POST`` of ``{"text": ...}`` (title in bold, mrkdwn).
- Telegram Bot API: ``POST /bot<token>/sendMessage`` with ``chat_id`` and ``text``.
- Pushover: ``POST /1/messages.json`` with ``token``, ``user``, ``message``,
  ``title`` and ``priority`` (-2..2).
- Home Assistant: ``POST /api/webhook/<webhook_id>`` of the notification as JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from gateway import safejson
from gateway.config.models import WebhookEndpoint
from gateway.localtime import iso_utc
from gateway.outbox.jobs import encode_body
from gateway.signing import signature_header
from gateway.templates import TemplateError, as_text, is_template, render_text, render_tree

NTFY_PRIORITY = {"min": 1, "low": 2, "default": 3, "high": 4, "urgent": 5}
PUSHOVER_PRIORITY = {"min": -2, "low": -1, "default": 0, "high": 1, "urgent": 2}
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    request: str | None  # JSON: method, url, content_type, headers; None for the standard POST


def render_request(
    endpoint: WebhookEndpoint, event: str, data: Any, msg_id: str, now: float
) -> Rendered:
    """The request for one webhook (:class:`TemplateError` if a template fails)."""
    context = {"event": event, "data": data, "id": msg_id, "timestamp": iso_utc(now)}
    url = render_text(endpoint.url, context) if is_template(endpoint.url) else endpoint.url
    if endpoint.service is not None:
        url, content_type, body = _preset(endpoint, url, data if isinstance(data, dict) else {})
    else:
        match endpoint.format:
            case "json":
                content_type, body = JSON, safejson.dumps(render_tree(endpoint.body, context))
            case "text":
                content_type = endpoint.content_type or "text/plain; charset=utf-8"
                body = render_text(str(endpoint.body), context).encode()
            case "form":
                fields = render_tree(endpoint.body, context)
                content_type = "application/x-www-form-urlencoded"
                body = urlencode({k: _field(v) for k, v in fields.items()}).encode()
            case _:
                content_type, body = JSON, encode_body(event, data, now)
    headers = {
        name: render_text(value.get_secret_value(), context)
        for name, value in endpoint.headers.items()
        if is_template(value.get_secret_value())
    }
    return Rendered(body, _request(endpoint.method, url, content_type, tuple(headers.items())))


@lru_cache(maxsize=256)
def _request(method: str, url: str, content_type: str, headers: tuple[tuple[str, str], ...]) -> str:
    """The stored request (the same text for every row of an untemplated URL)."""
    request: dict[str, Any] = {"method": method, "url": url, "content_type": content_type}
    if headers:
        request["headers"] = dict(headers)
    return json.dumps(request, ensure_ascii=False)


def _field(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else as_text(value)


def _preset(endpoint: WebhookEndpoint, url: str, note: Mapping[str, Any]) -> tuple[str, str, bytes]:
    title, message = note.get("title"), str(note.get("message", ""))
    priority, tags = str(note.get("priority", "default")), note.get("tags") or []
    base = url.rstrip("/")
    match endpoint.service:
        case "ntfy":
            body: dict[str, Any] = {"topic": endpoint.topic, "message": message}
            if title:
                body["title"] = title
            if priority != "default":
                body["priority"] = NTFY_PRIORITY.get(priority, 3)
            if tags:
                body["tags"] = list(tags)
            return base, JSON, safejson.dumps(body)
        case "slack":
            text = f"*{title}*\n{message}" if title else message
            return url, JSON, safejson.dumps({"text": text})
        case "telegram":
            text = f"{title}\n{message}" if title else message
            body = {"chat_id": endpoint.chat_id, "text": text}
            return f"{base}/bot@@token@@/sendMessage", JSON, safejson.dumps(body)
        case "pushover":
            body = {"token": "@@token@@", "user": "@@user@@", "message": message}
            if title:
                body["title"] = title
            body["priority"] = PUSHOVER_PRIORITY.get(priority, 0)
            return f"{base}/1/messages.json", JSON, safejson.dumps(body)
        case "homeassistant":
            body = {"title": title, "message": message, "priority": priority, "tags": list(tags)}
            return f"{base}/api/webhook/{endpoint.webhook_id}", JSON, safejson.dumps(body)
        case _:
            raise TemplateError(f"unknown service {endpoint.service!r}")


def _secrets(endpoint: WebhookEndpoint) -> dict[str, str]:
    out = {}
    if endpoint.token is not None:
        out["@@token@@"] = endpoint.token.get_secret_value()
    if endpoint.user is not None:
        out["@@user@@"] = endpoint.user.get_secret_value()
    return out


@lru_cache(maxsize=256)
def _stored(request: str) -> dict[str, Any]:
    stored: dict[str, Any] = json.loads(request)
    return stored


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One attempt's request: what is sent."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def outgoing(
    endpoint: WebhookEndpoint, msg_id: str, body: bytes, request: str | None, stamp: int
) -> Outgoing:
    """The request of one attempt: the stored one, with secrets, the endpoint's static
    headers and the signature of this attempt (a fresh timestamp each time)."""
    method, url, content_type, extra = "POST", endpoint.url, JSON, {}
    if request is not None:
        stored = _stored(request)
        method, url, content_type = stored["method"], stored["url"], stored["content_type"]
        extra = stored.get("headers", {})
        for marker, secret in _secrets(endpoint).items():
            url = url.replace(marker, secret)
            body = body.replace(marker.encode(), json.dumps(secret)[1:-1].encode())
    headers = {
        key: value.get_secret_value()
        for key, value in endpoint.headers.items()
        if not is_template(value.get_secret_value())
    }
    headers.update(extra)
    headers["content-type"] = content_type
    if endpoint.service == "ntfy" and endpoint.token is not None:
        headers["Authorization"] = f"Bearer {endpoint.token.get_secret_value()}"
    secrets = endpoint.secrets
    match endpoint.signing:
        case "standard-webhooks":
            headers.update({"webhook-id": msg_id, "webhook-timestamp": str(stamp)})
            if secrets:
                headers["webhook-signature"] = signature_header(secrets, msg_id, stamp, body)
        case "github" if secrets:
            mac = hmac.new(secrets[0].encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={mac}"
        case _:
            pass
    return Outgoing(method, url, headers, body)
