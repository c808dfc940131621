"""Outbound requests in any shape, and the notification presets, each checked at a
real receiver on 127.0.0.1: the stored row, the exact request (method, path,
headers, body), and a retry that sends the same bytes."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from gateway.config.models import WebhookEndpoint
from gateway.outbox import queries
from gateway.signing import verify
from tests.conftest import SECRET, Receiver
from tests.integration.test_outbox import Outbox


def endpoint(base: str, **kw: Any) -> WebhookEndpoint:
    return WebhookEndpoint.model_validate({"url": base, "retry": ["100ms"], **kw})


def base(receiver: Receiver) -> str:
    return f"http://127.0.0.1:{receiver.port}"


async def deliver(
    tmp_path: Path, receiver: Receiver, config: WebhookEndpoint, event: str, data: Any
) -> tuple[dict[str, Any], list[Any]]:
    """Queue one webhook, answer 503 then 200; the stored row and both requests."""
    receiver.responses = [(503, {"Retry-After": "0"}), (200, {})]
    async with Outbox(tmp_path / "outbox.db", {"it": config}) as outbox:
        msg_id = outbox.submit("it", event, data)
        await outbox.flushed()
        row = await outbox.store.call(lambda db: queries.show_message(db, msg_id))
        first, second = await receiver.wait_for(2)
    assert row is not None
    return row, [first, second]


async def test_a_json_body_with_a_templated_url_and_header_and_github_signing(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = endpoint(
        base(receiver) + "/sensors/{{ data.sensor }}",
        method="PUT",
        format="json",
        body={"value": "{{ data.value }}", "text": "{{ data.sensor }} reads {{ data.value }}"},
        headers={"X-Sensor": "{{ data.sensor }}", "Authorization": "Bearer static-token"},
        sign="github",
        secret="it's a plain shared secret",
    )
    row, (first, second) = await deliver(
        tmp_path, receiver, config, "reading", {"sensor": "freezer", "value": -18.5}
    )
    assert first.method == "PUT"
    assert first.path == "/sensors/freezer"
    assert json.loads(first.body) == {"value": -18.5, "text": "freezer reads -18.5"}
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-sensor"] == "freezer"
    assert first.headers["authorization"] == "Bearer static-token"
    mac = hmac.new(b"it's a plain shared secret", first.body, hashlib.sha256).hexdigest()
    assert first.headers["x-hub-signature-256"] == f"sha256={mac}"  # as adnanh/webhook checks
    assert "webhook-signature" not in first.headers
    assert second.body == first.body  # the retry: the same bytes
    assert second.headers["x-hub-signature-256"] == first.headers["x-hub-signature-256"]
    assert "static-token" not in json.dumps(row)  # secrets never stored


async def test_text_and_form_bodies(tmp_path: Path, receiver: Receiver) -> None:
    text = endpoint(
        base(receiver) + "/note",
        format="text",
        body="{{ data.who }} rang at {{ timestamp }}",
        content_type="text/markdown; charset=utf-8",
        sign="none",
    )
    _, (first, second) = await deliver(tmp_path, receiver, text, "doorbell", {"who": "someone"})
    assert first.body.decode().startswith("someone rang at 20")
    assert first.headers["content-type"] == "text/markdown; charset=utf-8"
    assert second.body == first.body
    receiver.received.clear()
    form = endpoint(
        base(receiver) + "/form",
        format="form",
        body={"state": "{{ data.on }}", "note": "a & b = c"},
        sign="none",
    )
    _, (first, _) = await deliver(tmp_path / "f", receiver, form, "x", {"on": True})
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(first.body.decode()) == {"state": ["on"], "note": ["a & b = c"]}


async def test_a_standard_endpoint_signs_each_attempt_afresh(
    tmp_path: Path, receiver: Receiver
) -> None:
    config = endpoint(base(receiver) + "/hook", secret=SECRET, format="json", body={"a": 1})
    _, (first, second) = await deliver(tmp_path, receiver, config, "x", {})
    for request in (first, second):
        assert (
            verify([SECRET], request.headers, request.body, float(request.time))
            == (request.headers["webhook-id"])
        )
    assert first.body == second.body


NOTE = {"title": "Freezer", "message": "at -5 °C", "priority": "high", "tags": ["warning"]}


@pytest.mark.parametrize(
    ("service", "settings", "path", "body", "header"),
    [
        (
            "ntfy",
            {"topic": "freezer", "token": "tk_ntfy"},
            "/",
            {
                "topic": "freezer",
                "title": "Freezer",
                "message": "at -5 °C",
                "priority": 4,
                "tags": ["warning"],
            },
            ("authorization", "Bearer tk_ntfy"),
        ),
        ("slack", {}, "/services/T0/B0/x", {"text": "*Freezer*\nat -5 °C"}, None),
        (
            "telegram",
            {"token": "123:ABC", "chat_id": -100123},
            "/bot123:ABC/sendMessage",
            {"chat_id": -100123, "text": "Freezer\nat -5 °C"},
            None,
        ),
        (
            "pushover",
            {"token": "app-token", "user": "user-key"},
            "/1/messages.json",
            {
                "token": "app-token",
                "user": "user-key",
                "message": "at -5 °C",
                "title": "Freezer",
                "priority": 1,
            },
            None,
        ),
        (
            "homeassistant",
            {"webhook_id": "freezer-alarm"},
            "/api/webhook/freezer-alarm",
            {"title": "Freezer", "message": "at -5 °C", "priority": "high", "tags": ["warning"]},
            None,
        ),
    ],
)
async def test_each_service_gets_the_request_its_api_documents(
    tmp_path: Path,
    receiver: Receiver,
    service: str,
    settings: dict[str, Any],
    path: str,
    body: dict[str, Any],
    header: tuple[str, str] | None,
) -> None:
    url = base(receiver) + ("/services/T0/B0/x" if service == "slack" else "")
    config = endpoint(url, service=service, **settings)
    row, (first, second) = await deliver(tmp_path, receiver, config, "notify", NOTE)
    assert (first.method, first.path) == ("POST", path)
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body) == body
    if header is not None:
        assert first.headers[header[0]] == header[1]
    assert "webhook-signature" not in first.headers  # third-party APIs: their own auth
    assert second.body == first.body
    for secret in ("tk_ntfy", "123:ABC", "app-token", "user-key"):
        assert secret not in json.dumps(row, default=str)  # placeholders in the database


def test_a_service_is_checked_at_load_time() -> None:
    with pytest.raises(ValueError, match="service telegram needs token, chat_id"):
        WebhookEndpoint.model_validate({"service": "telegram"})
    with pytest.raises(ValueError, match="format text needs body"):
        WebhookEndpoint.model_validate({"url": "http://127.0.0.1:9/", "format": "text"})
    with pytest.raises(ValueError, match="template syntax error"):
        WebhookEndpoint.model_validate(
            {"url": "http://127.0.0.1:9/", "format": "json", "body": {"a": "{{ data. }}"}}
        )
    with pytest.raises(ValueError, match="never be valid JSON at line 2 column 11"):
        WebhookEndpoint.model_validate(
            {
                "url": "http://127.0.0.1:9/",
                "format": "text",
                "content_type": "application/json",
                "body": '{"temp": {{ data.t }},\n "where": hallway}',
            }
        )
    good = {"url": "http://127.0.0.1:9/", "format": "text", "content_type": "application/json"}
    WebhookEndpoint.model_validate({**good, "body": '{"temp": {{ data.t }}, "at": "{{ id }}"}'})
    ntfy = WebhookEndpoint.model_validate({"service": "ntfy", "topic": "t"})
    assert ntfy.url == "https://ntfy.sh"
