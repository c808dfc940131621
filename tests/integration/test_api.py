"""The HTTP API of an in-process gateway, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.control import Control
from gateway.rules.timerkinds import TimerKind
from tests.conftest import TOKEN, control_client, demo_like_config, edited, free_port, running


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[str, Control]]:
    """The API on a Control built from its parts, served on port 0 (no daemon:
    the handlers and middleware are what is tested here)."""
    config = demo_like_config(tmp_path, free_port(), "http://127.0.0.1:9/")
    text = edited(
        config.read_text(),
        ("sensors:\n", "sensors:\n  freezer_temp: {kind: virtual}\n"),
        (
            "tokens:\n",
            "tokens:\n    viewer: {token: viewer-token-0123456789, read_only: true}\n"
            "    fan_only: {token: fan-only-token-0123456789, actuators: [fan]}\n",
        ),
        ("actuators:\n", "actuators:\n  fan: {gpio: 22}\n"),
    )
    config.write_text(text)
    async with control_client(config) as (client, control):
        yield str(client.make_url("")).rstrip("/"), control


async def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = TOKEN,
    data: bytes | None = None,
    content_type: str | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if content_type:
        headers["Content-Type"] = content_type
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, base + path, json=body, data=data, headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_healthz_needs_no_token(api: tuple[str, Control]) -> None:
    assert await call(api[0], "GET", "/healthz", token=None) == (200, {"status": "ok"})


async def test_status_reports_name_version_and_outbox(api: tuple[str, Control]) -> None:
    status, body = await call(api[0], "GET", "/api/v1/status")
    assert status == 200
    assert body["name"] == "test-pi"
    assert body["outbox"]["pending"] == 0
    assert body["inputs"]["hallway_motion"]["state"] == "connected"


async def test_injected_motion_turns_the_light_on(api: tuple[str, Control]) -> None:
    base, gw = api
    status, body = await call(base, "POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
    assert (status, body["value"]) == (200, True)
    await asyncio.sleep(0.05)
    status, light = await call(base, "GET", "/api/v1/actuators/hallway_light")
    assert (status, light["state"]) == (200, "on")
    assert light["until"] is not None


async def test_curl_default_content_type_with_a_json_body_is_accepted(
    api: tuple[str, Control],
) -> None:
    status, body = await call(
        api[0],
        "POST",
        "/api/v1/sensors/freezer_temp",
        data=b'{"value": -9.5}',
        content_type="application/x-www-form-urlencoded",
    )
    assert (status, body["value"]) == (200, -9.5)
    status, sensor = await call(api[0], "GET", "/api/v1/sensors/freezer_temp")
    assert sensor["value"] == -9.5


async def test_switching_a_relay_for_10_seconds(api: tuple[str, Control]) -> None:
    base, gw = api
    status, body = await call(
        base, "POST", "/api/v1/actuators/hallway_light", {"state": "on", "for": "10s"}
    )
    assert (status, body["state"]) == (200, "on")
    assert gw.live.devices.factory.pin(27).state == 0  # active-low board: on is low
    assert gw.timers.get(TimerKind.REVERT, "hallway_light") is not None


@pytest.mark.parametrize(
    ("method", "path", "body", "token", "status", "code"),
    [
        ("GET", "/api/v1/sensors", None, None, 401, "unauthorized"),
        ("GET", "/api/v1/sensors", None, "wrong-token-0123456789", 401, "unauthorized"),
        ("POST", "/api/v1/actuators/nope", {"state": "on"}, TOKEN, 404, "not_found"),
        ("GET", "/api/v1/sensors/nope", None, TOKEN, 404, "not_found"),
        ("GET", "/api/v1/nothing", None, TOKEN, 404, "not_found"),
        ("POST", "/api/v1/actuators/hallway_light", {"state": "maybe"}, TOKEN, 422, "invalid"),
        ("POST", "/api/v1/actuators/hallway_light", {"state": "on", "x": 1}, TOKEN, 422, "invalid"),
        (
            "POST",
            "/api/v1/actuators/hallway_light",
            {"state": "on", "for": "soon"},
            TOKEN,
            422,
            "invalid",
        ),
        ("POST", "/api/v1/actuators/hallway_light", [1, 2], TOKEN, 422, "invalid"),
        ("DELETE", "/api/v1/actuators/hallway_light", None, TOKEN, 405, "method_not_allowed"),
        (
            "POST",
            "/api/v1/actuators/hallway_light",
            {"state": "on"},
            "viewer-token-0123456789",
            403,
            "forbidden",
        ),
        (
            "POST",
            "/api/v1/actuators/hallway_light",
            {"state": "on"},
            "fan-only-token-0123456789",
            403,
            "forbidden",
        ),
        ("POST", "/api/v1/sensors/freezer_temp", {"value": "warm"}, TOKEN, 422, "invalid"),
    ],
)
async def test_bad_requests_get_json_errors(
    api: tuple[str, Control],
    method: str,
    path: str,
    body: Any,
    token: str | None,
    status: int,
    code: str,
) -> None:
    got_status, got = await call(api[0], method, path, body, token=token)
    assert got_status == status
    assert got["error"]["code"] == code
    assert got["error"]["message"]


async def test_malformed_json_is_400_and_other_types_415(api: tuple[str, Control]) -> None:
    path = "/api/v1/actuators/hallway_light"
    status, body = await call(
        api[0], "POST", path, data=b"{state: on", content_type="application/json"
    )
    assert (status, body["error"]["code"]) == (400, "bad_request")
    status, body = await call(api[0], "POST", path, data=b"state=on", content_type="text/plain")
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")


async def test_a_body_over_64_kib_is_413(api: tuple[str, Control]) -> None:
    big = b'{"state": "on", "pad": "' + b"x" * 70_000 + b'"}'
    status, body = await call(
        api[0], "POST", "/api/v1/actuators/hallway_light", data=big, content_type="application/json"
    )
    assert (status, body["error"]["code"]) == (413, "too_large")


async def test_a_scoped_token_may_switch_its_own_actuator(api: tuple[str, Control]) -> None:
    status, body = await call(
        api[0],
        "POST",
        "/api/v1/actuators/fan",
        {"state": "toggle"},
        token="fan-only-token-0123456789",
    )
    assert (status, body["state"]) == (200, "on")


async def test_a_repeated_wrong_token_is_limited_but_the_right_one_still_works(
    api: tuple[str, Control],
) -> None:
    """A misconfigured client on the same machine (bug 9) must not lock out valid tokens."""
    statuses = [
        (await call(api[0], "GET", "/api/v1/status", token="bad-token-0123456789"))[0]
        for _ in range(11)
    ]
    assert statuses == [401] * 10 + [429]
    assert (await call(api[0], "GET", "/api/v1/status"))[0] == 200


async def test_guessing_many_tokens_locks_the_client_out_of_the_api(
    api: tuple[str, Control],
) -> None:
    statuses = [
        (await call(api[0], "GET", "/api/v1/status", token=f"guess-{i:02d}-0123456789"))[0]
        for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]
    # someone guessing: even the right token waits until the window ends
    assert (await call(api[0], "GET", "/api/v1/status"))[0] == 429


async def test_metrics_are_prometheus_text_behind_the_token(api: tuple[str, Control]) -> None:
    base, gw = api
    await call(base, "POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/metrics") as r:
            assert r.status == 401
        async with s.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200
            assert r.content_type == "text/plain"
            text = await r.text()
    assert 'gateway_info{name="test-pi",version=' in text
    assert 'gateway_outbox_pending{endpoint="home_hub"} 1' in text
    fsyncs = re.search(r"^gateway_outbox_fsyncs_total (\d+)$", text, re.M)
    commits = re.search(r"^gateway_outbox_commits_total (\d+)$", text, re.M)
    assert fsyncs
    assert commits
    assert 1 <= int(fsyncs[1]) <= int(commits[1])  # the webhook the sensor queued
    assert "# TYPE gateway_webhook_delivery_seconds histogram" in text
    assert 'gateway_input_connected{input="hallway_motion"} 1' in text
    assert 'gateway_rule_runs_total{rule="hallway_motion_light"} 1' in text


async def test_metrics_parse_with_the_prometheus_client_and_carry_process_figures(
    api: tuple[str, Control],
) -> None:
    """The reference parser reads every family; the standard ``process_*`` series
    are there, and a counter has a sample for each rule, also one that never ran."""
    base, _ = api
    status, _ = await call(base, "POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
    async with (
        aiohttp.ClientSession() as s,
        s.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r,
    ):
        text = await r.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"):
        assert name in families, sorted(families)
    rss = families["process_resident_memory_bytes"].samples[0].value
    assert 10 * 2**20 < rss < 2**32
    start = families["process_start_time_seconds"].samples[0].value
    assert abs(start - time.time()) < 3600
    runs = {s.labels["rule"]: s.value for s in families["gateway_rule_runs"].samples}
    assert runs == {"hallway_motion_light": 1.0}
    assert families["gateway_rule_runs"].type == "counter"
    values = {s.labels["sensor"]: s.value for s in families["gateway_sensor_value"].samples}
    assert values == {"hallway_motion": 1.0}  # on as 1, for graphs and alerts
    assert families["gateway_sensor_available"].samples[0].value == 1.0
    [updated] = families["gateway_sensor_last_updated_timestamp_seconds"].samples
    assert abs(updated.value - time.time()) < 60
    lights = {s.labels["actuator"]: s.value for s in families["gateway_actuator_state"].samples}
    assert lights == {"hallway_light": 1.0, "fan": 0.0}


async def test_outbox_view_and_endpoint_enable(api: tuple[str, Control]) -> None:
    base, _ = api
    status, outbox = await call(base, "GET", "/api/v1/outbox")
    assert status == 200
    assert {"pending", "dead", "oldest_age", "endpoints", "recent_failures", "link"} <= set(outbox)
    status, body = await call(base, "POST", "/api/v1/outbox/endpoints/home_hub/enable")
    assert (status, body) == (200, {"endpoint": "home_hub", "disabled": False})
    status, body = await call(base, "POST", "/api/v1/outbox/endpoints/nope/enable")
    assert status == 404
    status, body = await call(base, "POST", "/api/v1/outbox/msg_nope/retry")
    assert status == 404


async def test_a_real_device_cannot_be_set(tmp_path: Path) -> None:
    """Outside simulation a GPIO input is read from its pin: setting it is 409."""
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    text = edited(
        config.read_text(),
        ("simulate: true", "simulate: false"),
    )
    config.write_text(text + "gpio: {pin_factory: mock}\n")
    async with running(config, simulate=False):
        base = f"http://127.0.0.1:{port}"
        status, body = await call(base, "POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
        assert (status, body["error"]["code"]) == (409, "conflict")
        assert "real GPIO input" in body["error"]["message"]
        status, sensor = await call(base, "GET", "/api/v1/sensors/hallway_motion")
        assert sensor["value"] is False  # unchanged


async def test_outbox_series_exist_with_0_for_every_endpoint_when_empty(
    api: tuple[str, Control],
) -> None:
    """A vanished series breaks dashboards and absent() alerts."""
    async with (
        aiohttp.ClientSession() as s,
        s.get(api[0] + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r,
    ):
        text = await r.text()
    assert 'gateway_outbox_pending{endpoint="home_hub"} 0' in text
    assert 'gateway_outbox_dead{endpoint="home_hub"} 0' in text
