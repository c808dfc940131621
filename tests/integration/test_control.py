"""The control facade behind the API, built from its parts and served on port 0;
and the composition root's promise that a failed start leaves nothing open."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import load_config
from gateway.errors import GatewayError, InvalidValue, NotFound, Refused
from tests.conftest import TOKEN, control_client, demo_like_config, edited, free_port

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def limited_config(tmp_path: Path) -> Path:
    config = demo_like_config(tmp_path, free_port(), "http://127.0.0.1:9/")
    text = config.read_text()
    assert "active_high: false}" in text
    config.write_text(
        edited(
            text,
            ("active_high: false}", "active_high: false, max_on: 4s}"),
            ("sensors:\n", "sensors:\n  freezer_temp: {kind: virtual}\n"),
        )
    )
    return config


def seconds_until(until: str) -> float:
    return dt.datetime.fromisoformat(until).timestamp() - time.time()


async def test_until_is_the_next_switch_whichever_timer_makes_it(tmp_path: Path) -> None:
    async with control_client(limited_config(tmp_path)) as (client, _):
        answer = await client.post(
            "/api/v1/actuators/hallway_light", json={"state": "on"}, headers=AUTH
        )
        body = await answer.json()
        assert answer.status == 200
        assert 2.5 < seconds_until(body["until"]) <= 4.5  # max_on switches it off
        answer = await client.post(
            "/api/v1/actuators/hallway_light", json={"state": "on", "for": "2s"}, headers=AUTH
        )
        assert 0.5 < seconds_until((await answer.json())["until"]) <= 2.5


async def test_for_longer_than_max_on_is_refused_as_check_refuses_it(tmp_path: Path) -> None:
    async with control_client(limited_config(tmp_path)) as (client, control):
        answer = await client.post(
            "/api/v1/actuators/hallway_light", json={"state": "on", "for": "10s"}, headers=AUTH
        )
        body = await answer.json()
        assert answer.status == 422
        assert body["error"]["message"] == "for: 10s is longer than max_on (4s) of hallway_light"
        assert control.actuator("hallway_light").state == "off"  # nothing was switched
        # off for 10 s (then back on) is not limited by max_on
        answer = await client.post(
            "/api/v1/actuators/hallway_light", json={"state": "off", "for": "10s"}, headers=AUTH
        )
        assert answer.status == 200


async def test_the_facade_raises_the_gateways_errors_and_the_api_maps_them(
    tmp_path: Path,
) -> None:
    async with control_client(limited_config(tmp_path)) as (client, control):
        control.simulate = False  # as on a Pi: a real input cannot be set
        with pytest.raises(NotFound, match="no sensor named 'attic'"):
            control.sensor("attic")
        with pytest.raises(InvalidValue, match="value: "):
            await control.set_sensor("freezer_temp", "warm", "test")
        with pytest.raises(Refused, match="real GPIO input"):
            await control.set_sensor("hallway_motion", True, "test")
        for path, body, status, code in [
            ("/api/v1/sensors/attic", {"value": 1}, 404, "not_found"),
            ("/api/v1/sensors/freezer_temp", {"value": "warm"}, 422, "invalid"),
            ("/api/v1/sensors/hallway_motion", {"value": "on"}, 409, "conflict"),
            ("/api/v1/outbox/endpoints/nowhere/enable", None, 404, "not_found"),
        ]:
            answer = await client.post(path, json=body, headers=AUTH)
            assert (answer.status, (await answer.json())["error"]["code"]) == (status, code)


async def test_a_bad_tls_key_at_start_leaves_no_thread_and_no_pin_open(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    config = demo_like_config(tmp_path, free_port(), "http://127.0.0.1:9/")
    text = config.read_text()
    assert "server:\n" in text
    config.write_text(
        edited(
            text,
            ("server:\n", f"server:\n  tls: {{cert: {cert}, key: {key}}}\n"),
        )
    )
    gateway = Gateway(load_config(config), simulate=True)
    with pytest.raises(GatewayError, match="TLS certificate or key"):
        await gateway.run(handle_signals=False)
    assert not [t for t in threading.enumerate() if t.name == "outbox-db"]
    assert gateway.control is not None
    devices = gateway.control.live.devices
    assert devices.closed
    assert devices.inputs
    assert all(sensor.device.closed for sensor in devices.inputs.values())
    assert not list(devices.outputs.gpio)  # every output closed and let go
    assert all(pin._function == "input" for pin in devices.factory.pins.values())


async def test_hook_requests_are_counted_by_outcome(tmp_path: Path) -> None:
    demo = Path(__file__).parents[2] / "config" / "demo.yaml"
    config = tmp_path / "demo.yaml"
    config.write_text(
        edited(demo.read_text(), ("state_dir: ../state/demo", f"state_dir: {tmp_path}"))
    )
    door = {"X-Door-Token": "demo-door-token-change-me"}
    async with control_client(config) as (client, _):
        for headers, body, status in [
            ({"X-Door-Token": "wrong-token-0123456789"}, {"door": "front"}, 401),
            (door, {"door": "side"}, 422),
            (door, {"door": "front"}, 202),
            (door, {"door": "back", "open": True}, 202),
        ]:
            answer = await client.post("/hooks/door", json=body, headers=headers)
            assert answer.status == status
        answer = await client.get(
            "/metrics", headers={"Authorization": "Bearer demo-token-change-me"}
        )
        text = await answer.text()
    for outcome, n in (("accepted", 2), ("rejected", 1), ("invalid", 1)):
        assert f'gateway_hook_requests_total{{hook="door",outcome="{outcome}"}} {n}' in text
    assert 'gateway_hook_requests_total{hook="home_hub",outcome="accepted"} 0' in text
    assert 'gateway_rule_runs_total{rule="door_log"} 2' in text


async def test_the_api_refuses_an_interlock_and_shows_a_deferred_switch(tmp_path: Path) -> None:
    config = demo_like_config(tmp_path, free_port(), "http://127.0.0.1:9/")
    config.write_text(
        edited(
            config.read_text(),
            (
                "actuators:\n",
                "actuators:\n  pump_in: {gpio: 5, interlock: [pump_out]}\n"
                "  pump_out: {gpio: 6}\n  compressor: {gpio: 13, min_on: 5m}\n",
            ),
        )
    )
    async with control_client(config) as (client, _):

        async def switch(name: str, state: str) -> tuple[int, dict[str, Any]]:
            answer = await client.post(
                f"/api/v1/actuators/{name}", json={"state": state}, headers=AUTH
            )
            return answer.status, await answer.json()

        assert (await switch("pump_out", "on"))[0] == 200
        status, body = await switch("pump_in", "on")
        assert (status, body["error"]["code"]) == (409, "conflict")
        assert body["error"]["message"] == "pump_in is interlocked with pump_out, which is on"
        assert (await switch("compressor", "on"))[1]["deferred"] is None
        status, body = await switch("compressor", "off")
        assert (status, body["state"], body["deferred"]["state"]) == (200, "on", "off")
        assert 290 < seconds_until(body["deferred"]["at"]) <= 300


async def test_a_sensor_says_when_it_last_read_and_when_it_last_changed(tmp_path: Path) -> None:
    async with control_client(limited_config(tmp_path)) as (client, control):
        assert control.sensor("freezer_temp").last_updated is None
        for value in (-18.0, -18.0):
            answer = await client.post(
                "/api/v1/sensors/freezer_temp", json={"value": value}, headers=AUTH
            )
            assert answer.status == 200
        runtime = control.live.runtime
        assert runtime.updated["freezer_temp"] > runtime.changed["freezer_temp"]  # a repeat
        answer = await client.get("/api/v1/sensors/freezer_temp", headers=AUTH)
        view = await answer.json()
        assert view["last_updated"].endswith("Z")
        assert view["last_changed"] <= view["last_updated"]  # milliseconds: may be equal
        gpio = await (await client.get("/api/v1/sensors/hallway_motion", headers=AUTH)).json()
        assert gpio["last_updated"] is not None  # read when the pin opened
