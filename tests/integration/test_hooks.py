"""Inbound webhooks and the API's outer defences, over real HTTP to an in-process gateway."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.control import Control
from gateway.signing import sign
from tests.conftest import SECRET, TOKEN, demo_like_config, edited, free_port, running

OLD_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
GITHUB_SECRET = "github-secret-0123456789"
SHORTCUT = "shortcut-token-0123456789"

HOOKS = f"""
  hooks:
    hub: {{verify: standard-webhooks, secret: [{SECRET}, {OLD_SECRET}]}}
    ci: {{verify: github, secret: {GITHUB_SECRET}, headers: [X-GitHub-Event]}}
    shortcut: {{verify: token, token: {SHORTCUT}, header: X-Control-Token}}
"""

RULES = """
  - id: hub_light
    when: {hook: hub}
    if: [{template: "{{ event.payload.light == 'on' }}"}]
    then:
      - {actuate: hallway_light, state: on}
      - {webhook: home_hub, event: hook.seen, data: {door: "{{ event.payload.door }}"}}
  - id: ci_light
    when: {hook: ci}
    if: [{template: "{{ event.headers['X-GitHub-Event'] == 'push' }}"}]
    then: [{actuate: hallway_light, state: toggle}]
  - id: shortcut
    when: {hook: shortcut}
    then: [{actuate: hallway_light, state: on, for: "{{ 1 }}"}]
"""


def config_text(base: str, extra_server: str = "") -> str:
    text = edited(
        base,
        ("  tokens:\n", HOOKS + extra_server + "  tokens:\n"),
    )
    text = edited(
        text,
        ("rules:\n", "rules:\n" + RULES.replace('for: "{{ 1 }}"', "for: 1m")),
    )
    return text


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[tuple[str, Control]]:
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    config.write_text(config_text(config.read_text()))
    async with running(config) as gateway:
        yield f"http://127.0.0.1:{port}", gateway


def signed(
    body: bytes, secret: str = SECRET, msg_id: str = "msg_abc", stamp: int | None = None
) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, msg_id, stamp, body),
        "Content-Type": "application/json",
    }


async def post(base: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(base + path, data=body, headers=headers) as r:
        return r.status, await r.json()


BODY = b'{"light": "on", "door": "front"}'


async def light(gw: Control) -> str:
    return str(gw.actuators()["hallway_light"].state)


async def test_a_signed_hook_fires_its_rule_once_and_a_replay_is_not_acted_on(
    gw: tuple[str, Control],
) -> None:
    base, gateway = gw
    status, body = await post(base, "/hooks/hub", BODY, signed(BODY))
    assert (status, body) == (202, {"id": "msg_abc"})
    assert await light(gateway) == "on"
    gateway.switch("hallway_light", False, None, "test")
    status, body = await post(base, "/hooks/hub", BODY, signed(BODY))  # the sender retries
    assert (status, body) == (200, {"id": "msg_abc", "duplicate": True})
    assert await light(gateway) == "off"  # not acted on again
    outbox = await gateway.outbox_view()
    assert outbox["pending"] == 1  # one webhook from the rule, not two


async def test_the_rotated_secret_is_accepted(gw: tuple[str, Control]) -> None:
    status, _ = await post(gw[0], "/hooks/hub", BODY, signed(BODY, OLD_SECRET, "msg_old"))
    assert status == 202


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        (
            lambda: signed(BODY, "whsec_" + "WllaWllaWllaWllaWllaWllaWllaWlla"),
            BODY,
            "no webhook-signature",
        ),
        (lambda: signed(BODY, stamp=int(time.time()) - 600), BODY, "too old"),
        (lambda: signed(BODY, stamp=int(time.time()) + 600), BODY, "in the future"),
        (
            lambda: signed(BODY),
            json.dumps(json.loads(BODY), separators=(",", ":")).encode(),
            "no webhook-signature",
        ),
        (
            lambda: {**signed(BODY), "webhook-signature": "v1,!!!not base64"},
            BODY,
            "no webhook-signature",
        ),
        (lambda: {**signed(BODY), "webhook-timestamp": "yesterday"}, BODY, "not a number"),
        (
            lambda: {**signed(BODY), "webhook-signature": "\u00e9\u00e9"},
            BODY,
            "no webhook-signature",
        ),
        (lambda: {"Content-Type": "application/json"}, BODY, "missing"),
    ],
)
async def test_bad_standard_webhooks_are_401(
    gw: tuple[str, Control], headers: Callable[[], dict[str, str]], body: bytes, why: str
) -> None:
    """Headers are signed when the test runs, not at collection (time stamps expire)."""
    status, answer = await post(gw[0], "/hooks/hub", body, headers())
    assert status == 401
    assert why in answer["error"]["message"]
    assert await light(gw[1]) == "off"


async def test_github_signatures(gw: tuple[str, Control]) -> None:
    base, gateway = gw
    body = b'{"ref": "refs/heads/main"}'
    good = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": good,
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "d-1",
        "Content-Type": "application/json",
    }
    assert (await post(base, "/hooks/ci", body, headers))[0] == 202
    assert await light(gateway) == "on"
    bad = {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Delivery": "d-2"}
    assert (await post(base, "/hooks/ci", body, bad))[0] == 401
    malformed = {**headers, "X-Hub-Signature-256": "md5=abc", "X-GitHub-Delivery": "d-3"}
    assert (await post(base, "/hooks/ci", body, malformed))[0] == 401


async def test_token_hooks(gw: tuple[str, Control]) -> None:
    base, gateway = gw
    ok = {"X-Control-Token": SHORTCUT, "Content-Type": "application/json"}
    assert (await post(base, "/hooks/shortcut", b"{}", ok))[0] == 202
    assert await light(gateway) == "on"
    wrong = {"X-Control-Token": "nope", "Content-Type": "application/json"}
    assert (await post(base, "/hooks/shortcut", b"{}", wrong))[0] == 401


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/hooks/nope", BODY, lambda: signed(BODY), 404),
        ("/hooks/hub", b"x" * 70_000, lambda: signed(b"x" * 70_000), 413),
        (
            "/hooks/hub",
            b"light=on",
            lambda: {**signed(b"light=on"), "Content-Type": "text/plain"},
            415,
        ),
        ("/hooks/hub", b"{light", lambda: signed(b"{light"), 400),
    ],
)
async def test_hook_errors(
    gw: tuple[str, Control],
    path: str,
    body: bytes,
    headers: Callable[[], dict[str, str]],
    status: int,
) -> None:
    got, answer = await post(gw[0], path, body, headers())
    assert got == status
    assert answer["error"]["message"]


async def test_failed_hook_verifications_are_rate_limited(gw: tuple[str, Control]) -> None:
    statuses = []
    for n in range(11):
        bad = signed(BODY, "whsec_" + "WllaWllaWllaWllaWllaWllaWllaWlla", f"msg_{n}")
        statuses.append((await post(gw[0], "/hooks/hub", BODY, bad))[0])
    assert statuses == [401] * 10 + [429]


async def test_the_openapi_document_is_valid_and_describes_the_answers(
    gw: tuple[str, Control],
) -> None:
    import jsonschema
    from openapi_spec_validator import validate

    base, _ = gw
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as s:
        async with s.get(base + "/api/v1/openapi.json") as r:
            doc = await r.json()
        validate(doc)
        schemas = doc["components"]["schemas"]

        def check(answer: Any, name: str) -> None:
            schema = {**schemas[name], "components": {"schemas": schemas}}
            text = json.dumps(schema).replace("#/components/schemas/", "#/components/schemas/")
            jsonschema.validate(answer, json.loads(text))

        async with s.get(base + "/api/v1/status") as r:
            check(await r.json(), "StatusView")
        async with s.get(base + "/api/v1/actuators/hallway_light") as r:
            check(await r.json(), "ActuatorView")
        async with s.get(base + "/api/v1/sensors/hallway_motion") as r:
            check(await r.json(), "SensorView")
        async with s.get(base + "/api/v1/outbox") as r:
            check(await r.json(), "OutboxView")
        async with s.get(base + "/api/v1/nope") as r:
            check(await r.json(), "ErrorBody")
    assert set(doc["paths"]) >= {"/hooks/{name}", "/api/v1/actuators/{id}", "/metrics"}


async def test_clients_outside_the_allowlist_get_403_and_proxies_are_believed(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    extra = "  allow: [10.0.0.0/8]\n  trusted_proxies: [127.0.0.1]\n"
    config.write_text(config_text(config.read_text(), extra))
    async with running(config):
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as s:
            async with s.get(base + "/api/v1/status") as r:
                assert r.status == 403  # 127.0.0.1 itself is not allowed
            async with s.get(
                base + "/api/v1/status", headers={"X-Forwarded-For": "203.0.113.9, 10.1.2.3"}
            ) as r:
                assert r.status == 200  # the proxy says: 10.1.2.3
            async with s.get(
                base + "/api/v1/status", headers={"X-Forwarded-For": "10.1.2.3, 203.0.113.9"}
            ) as r:
                assert r.status == 403  # the last untrusted hop is the real client


async def test_per_client_rate_limit_and_in_flight_bound() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.api.access import AccessPolicy
    from gateway.api.middleware import access, json_errors

    # 8 in flight; one client may hold a quarter of the open (unauthenticated) slots
    policy = AccessPolicy(requests=5, per=60.0, max_in_flight=8)
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application(middlewares=[json_errors, access])
    from gateway.api.middleware import ACCESS_KEY

    app[ACCESS_KEY] = policy
    app.router.add_get("/slow", slow)
    async with TestClient(TestServer(app)) as client:
        first = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
        await asyncio.sleep(0.1)
        busy = await client.get("/slow")
        assert busy.status == 503
        assert busy.headers["Retry-After"] == "1"
        release.set()
        for task in first:
            assert (await task).status == 200
        statuses = [(await client.get("/slow")).status for _ in range(3)]
        assert statuses == [200, 200, 429]  # 5 allowed per minute: 3 + 2 before
        limited = await client.get("/slow")
        assert int(limited.headers["Retry-After"]) > 50


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_serves_https(tmp_path: Path) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    config.write_text(
        edited(
            config.read_text(),
            ("  tokens:\n", f"  tls: {{cert: {cert}, key: {key}}}\n  tokens:\n"),
        )
    )
    async with running(config):
        context = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as s:
            async with s.get(f"https://127.0.0.1:{port}/healthz", ssl=context) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    await r.read()


async def test_a_replay_after_a_restart_is_still_not_acted_on(tmp_path: Path) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    config.write_text(config_text(config.read_text()))
    base, headers = f"http://127.0.0.1:{port}", signed(BODY, msg_id="msg_restart")
    async with running(config):
        assert (await post(base, "/hooks/hub", BODY, headers))[0] == 202
    async with running(config) as gateway:  # the same state directory
        assert await post(base, "/hooks/hub", BODY, headers) == (
            200,
            {"id": "msg_restart", "duplicate": True},
        )
        assert await light(gateway) == "off"  # off after the restart, and not switched again


async def test_a_github_redelivery_is_not_acted_on_twice(gw: tuple[str, Control]) -> None:
    base, gateway = gw
    body = b'{"ref": "refs/heads/main"}'
    mac = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": f"sha256={mac}",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "Content-Type": "application/json",
    }
    assert (await post(base, "/hooks/ci", body, headers))[0] == 202
    assert await light(gateway) == "on"  # toggled once
    assert (await post(base, "/hooks/ci", body, headers))[0] == 200
    assert await light(gateway) == "on"  # not toggled back


async def test_a_token_hook_takes_a_bearer_token_and_templates_see_the_query(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    hook = f"  hooks:\n    phone: {{verify: token, token: {SHORTCUT}}}\n"
    rule = (
        "  - id: phone\n    when: {hook: phone}\n"
        "    if: [{template: \"{{ event.query.room == 'hallway' }}\"}]\n"
        "    then: [{actuate: hallway_light, state: on}]\n"
    )
    config.write_text(
        edited(
            config.read_text(),
            ("  tokens:\n", hook + "  tokens:\n"),
            ("rules:\n", "rules:\n" + rule),
        )
    )
    base = f"http://127.0.0.1:{port}"
    bearer = {"Authorization": f"Bearer {SHORTCUT}", "Content-Type": "application/json"}
    async with running(config) as gateway:
        caplog.set_level(logging.INFO, logger="gateway")
        assert (await post(base, "/hooks/phone?room=kitchen", b"", bearer))[0] == 202
        assert await light(gateway) == "off"  # the condition on the query does not hold
        status, answer = await post(base, "/hooks/phone?room=hallway", b"", bearer)
        assert status == 202
        assert await light(gateway) == "on"
        # the audit line says which hook, which delivery and from where
        assert (
            f"hallway_light on by rule phone (hook phone {answer['id']} from 127.0.0.1)"
            in caplog.text
        )
        wrong = {"Authorization": f"Token {SHORTCUT}", "Content-Type": "application/json"}
        assert (await post(base, "/hooks/phone", b"", wrong))[0] == 401


async def test_every_api_actuation_is_audited_even_when_nothing_changes(
    gw: tuple[str, Control], caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = gw
    caplog.set_level(logging.INFO, logger="gateway")
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "198.51.100.7"}
    async with aiohttp.ClientSession(headers=headers) as s:
        for _ in range(2):
            async with s.post(
                base + "/api/v1/actuators/hallway_light", json={"state": "on", "for": "30s"}
            ) as r:
                assert r.status == 200
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("hallway_light")]
    # X-Forwarded-For from an untrusted peer is ignored: the address is the peer's
    assert lines == [
        "hallway_light on by token tester from 127.0.0.1 for 30s",
        "hallway_light on by token tester from 127.0.0.1 for 30s (already on)",
    ]


async def test_without_tokens_the_api_answers_only_this_machine(tmp_path: Path) -> None:
    """No tokens on a loopback listener: local clients only, also behind a local proxy."""
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    text = edited(
        config.read_text(),
        (
            f"  tokens:\n    tester: {{token: {TOKEN}}}\n",
            "  trusted_proxies: [127.0.0.1]\n",
        ),
    )
    assert "tokens:" not in text
    config.write_text(text)
    base = f"http://127.0.0.1:{port}"
    async with running(config) as gateway:
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/api/v1/status") as r:
                assert r.status == 200
            forwarded = {"X-Forwarded-For": "203.0.113.50"}
            async with s.get(base + "/api/v1/status", headers=forwarded) as r:
                assert r.status == 401
                assert "answers this machine only" in (await r.json())["error"]["message"]
            async with s.post(
                base + "/api/v1/actuators/hallway_light", json={"state": "on"}, headers=forwarded
            ) as r:
                assert r.status == 401
        assert await light(gateway) == "off"
