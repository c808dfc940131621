"""End to end: a serial line and an MQTT message each fire a rule that sends a webhook."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import (
    SECRET,
    TOKEN,
    Board,
    Daemon,
    Mosquitto,
    Receiver,
    free_port,
    write_config,
)

pytestmark = pytest.mark.e2e


async def test_serial_and_mqtt_readings_fire_rules_that_send_webhooks(
    tmp_path: Path,
    receiver: Receiver,
    mosquitto: Mosquitto,
    daemon_factory: Callable[[Path, int], Daemon],
    board: Board,
) -> None:
    device = board.link
    port = free_port()
    config = write_config(
        tmp_path,
        f"""
        gateway: {{name: porch, state_dir: {tmp_path / "state"}, simulate: true}}
        mqtt: {{host: 127.0.0.1, port: {mosquitto.port}, client_id: e2e-gateway}}
        serial:
          weather: {{port: {device}, format: json}}
        sensors:
          porch_temp: {{serial: weather, field: temp_c}}
          garage_door: {{mqtt: home/garage/door, value: "{{{{ payload.state }}}}"}}
        webhooks:
          hub: {{url: {receiver.url}, secret: {SECRET}, retry: [100ms]}}
        server:
          listen: 127.0.0.1:{port}
          tokens: {{t: {{token: {TOKEN}}}}}
        rules:
          - id: warm_porch
            when: {{sensor: porch_temp, above: 30}}
            then:
              - {{webhook: hub, event: porch.warm, data: {{temp: "{{{{ event.value }}}}"}}}}
              - {{mqtt_publish: "porch/alert", payload: {{temp: "{{{{ event.value }}}}"}}}}
              - {{serial_write: weather, data: "BEEP\\n"}}
          - id: garage_open
            when: {{sensor: garage_door, to: open}}
            then:
              - {{webhook: hub, event: garage.opened}}
        """,
    )
    daemon = daemon_factory(config, port)
    daemon.start()
    await daemon.wait_ready()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="e2e-test") as client:
        await client.subscribe("porch/alert", qos=1)
        for _ in range(100):  # both connections come up after READY
            status, body = await daemon.request("GET", "/api/v1/status")
            states = {k: v["state"] for k, v in body["inputs"].items()}
            if states == {"serial:weather": "connected", "mqtt": "connected"}:
                break
            await asyncio.sleep(0.1)
        assert states == {"serial:weather": "connected", "mqtt": "connected"}
        board.send(b'{"temp_c": 25}\n{"temp_c": 31.5}\n')
        await client.publish("home/garage/door", b'{"state": "open"}', qos=1)
        hooks = await receiver.wait_for(2)
        assert {h.json["type"] for h in hooks} == {"porch.warm", "garage.opened"}
        warm = next(h for h in hooks if h.json["type"] == "porch.warm")
        assert warm.json["data"] == {"temp": 31.5}
        async with asyncio.timeout(5):
            message = await anext(aiter(client.messages))
        assert bytes(message.payload) == b'{"temp": 31.5}'
        assert os.read(board.master, 100) == b"BEEP\n"


async def test_the_last_will_says_offline_when_the_daemon_is_killed(
    tmp_path: Path, mosquitto: Mosquitto, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        f"""
        gateway: {{name: porch, state_dir: {tmp_path / "state"}, simulate: true}}
        mqtt: {{host: 127.0.0.1, port: {mosquitto.port}}}
        server: {{listen: 127.0.0.1:{port}, tokens: {{t: {{token: {TOKEN}}}}}}}
        """,
    )
    daemon = daemon_factory(config, port)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="watcher") as watcher:
        await watcher.subscribe("gateway/porch/status", qos=1)
        daemon.start()
        await daemon.wait_ready()
        seen: list[str] = []
        async with asyncio.timeout(10):
            async for message in watcher.messages:
                seen.append(bytes(message.payload).decode())
                if seen[-1] == "online":
                    break
        daemon.kill()  # no clean goodbye: the broker publishes the last will
        async with asyncio.timeout(10):
            async for message in watcher.messages:
                seen.append(bytes(message.payload).decode())
                if seen[-1] == "offline":
                    break
    assert seen[-2:] == ["online", "offline"]
