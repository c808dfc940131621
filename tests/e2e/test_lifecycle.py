"""A stop leaves every actuator safe, MQTT ones included; a start says their state."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import Daemon, Mosquitto, free_port, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def siren_config(tmp: Path, port: int, broker: int) -> Path:
    return write_config(
        tmp,
        f"""
        gateway: {{name: safe, state_dir: {tmp / "state"}, simulate: true}}
        mqtt: {{host: 127.0.0.1, port: {broker}, client_id: safe-gw}}
        actuators:
          siren: {{mqtt: yard/siren/set, payload: "{{{{ state }}}}", retain: true}}
        server: {{listen: 127.0.0.1:{port}}}
        """,
    )


async def retained(broker: Mosquitto, topic: str) -> str | None:
    """The retained payload of ``topic`` right now, as a new subscriber sees it."""
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="looker") as client:
        await client.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(1.0):
                async for message in client.messages:
                    return bytes(message.payload).decode()
        except TimeoutError:
            return None
    return None


async def test_a_retained_mqtt_actuator_is_off_after_a_stop_and_announced_at_start(
    tmp_path: Path, mosquitto: Mosquitto, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    port = free_port()
    daemon = daemon_factory(siren_config(tmp_path, port, mosquitto.port), port)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="seed") as seed:
        # a crash left the siren retained "on"
        await seed.publish("yard/siren/set", b"on", qos=1, retain=True)
    daemon.start()
    await daemon.wait_ready()
    async with asyncio.timeout(10):
        while await retained(mosquitto, "yard/siren/set") != "off":
            await asyncio.sleep(0.1)  # the start says the real state: off
    status, body = await daemon.request("POST", "/api/v1/actuators/siren", {"state": "on"})
    assert (status, body["state"]) == (200, "on")
    async with asyncio.timeout(10):
        while await retained(mosquitto, "yard/siren/set") != "on":
            await asyncio.sleep(0.1)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert await retained(mosquitto, "yard/siren/set") == "off"
    assert "siren off (the safe state at a stop)" in daemon.log()
