"""A stop leaves every actuator safe, MQTT ones included; a start says their state."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import (
    Board,
    Daemon,
    Mosquitto,
    Receiver,
    edited,
    free_port,
    write_config,
)

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


def freezer_config(tmp: Path, port: int, broker: int, receiver_url: str, note: str) -> Path:
    return write_config(
        tmp,
        f"""
        gateway: {{name: cold, state_dir: {tmp / "state"}, simulate: true}}
        mqtt: {{host: 127.0.0.1, port: {broker}, client_id: cold-gw}}
        sensors:
          freezer_temp: {{kind: virtual, type: number, initial: -20}}
          door: {{kind: virtual, type: binary, initial: off}}
        webhooks:
          phone: {{url: {receiver_url}, retry: [200ms]}}
        server: {{listen: 127.0.0.1:{port}}}
        rules:
          - id: freezer_warm
            when: {{sensor: freezer_temp, above: -10, for: 3s}}
            then:
              - webhook: phone
                event: freezer.warm
          - id: door_note
            when: {{sensor: door, to: on}}
            then:
              - log: "{note}"
        """,
    )


async def test_a_reload_keeps_values_pending_alarms_and_the_mqtt_connection(
    tmp_path: Path,
    mosquitto: Mosquitto,
    receiver: Receiver,
    daemon_factory: Callable[[Path, int], Daemon],
) -> None:
    """Editing an unrelated rule must not disarm a pending freezer alarm, make the
    freezer look cold again, or flap the retained status topic."""
    port = free_port()
    config = freezer_config(tmp_path, port, mosquitto.port, receiver.url, "door opened")
    daemon = daemon_factory(config, port)
    daemon.start()
    await daemon.wait_ready()
    statuses: list[str] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="watcher") as watcher:
        await watcher.subscribe("gateway/cold/status", qos=1)

        async def watch() -> None:
            async for message in watcher.messages:
                statuses.append(bytes(message.payload).decode())

        watching = asyncio.create_task(watch())
        async with asyncio.timeout(5):
            while statuses != ["online"]:
                await asyncio.sleep(0.05)  # the retained "online" of the start
        status, _ = await daemon.request("POST", "/api/v1/sensors/freezer_temp", {"value": 5})
        assert status == 200  # the 3 s of "above -10" start now
        config.write_text(
            edited(
                config.read_text(),
                ("door opened", "the door opened"),
            )
        )
        daemon.signal(signal.SIGHUP)
        await daemon.wait_log("reloaded")
        _, sensor = await daemon.request("GET", "/api/v1/sensors/freezer_temp")
        assert sensor["value"] == 5  # not reset to initial: -20
        [hook] = await receiver.wait_for(1, timeout=10)
        assert hook.json["type"] == "freezer.warm"
        await asyncio.sleep(0.3)
        watching.cancel()
    assert statuses == ["online"], "the reload flapped the status topic"
    assert "changed while stopped" not in daemon.log()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


async def test_a_reload_that_changes_a_rule_drops_only_that_rules_timers(
    tmp_path: Path,
    mosquitto: Mosquitto,
    receiver: Receiver,
    daemon_factory: Callable[[Path, int], Daemon],
) -> None:
    port = free_port()
    config = freezer_config(tmp_path, port, mosquitto.port, receiver.url, "door opened")
    daemon = daemon_factory(config, port)
    daemon.start()
    await daemon.wait_ready()
    await daemon.request("POST", "/api/v1/sensors/freezer_temp", {"value": 5})
    config.write_text(
        edited(
            config.read_text(),
            ("above: -10, for: 3s", "above: -10, for: 2s"),
        )
    )
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log("reloaded")
    await asyncio.sleep(3.5)
    assert receiver.received == []  # the changed rule starts over: no reading since
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


async def test_a_serial_actuator_is_switched_off_on_its_port_before_the_port_closes(
    tmp_path: Path, board: Board, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    """The stop order: the `off` line is written while the port is still open (no
    "serial port ... is not connected"), then the port closes."""
    port = free_port()
    config = write_config(
        tmp_path,
        f"""
        gateway: {{name: pump-gw, state_dir: {tmp_path / "state"}, simulate: true}}
        serial:
          board: {{port: {board.link}}}
        actuators:
          pump: {{serial: board, command: "PUMP {{{{ state }}}}\\n"}}
        server: {{listen: 127.0.0.1:{port}}}
        """,
    )
    daemon = daemon_factory(config, port)
    daemon.start()
    await daemon.wait_ready()
    await daemon.wait_log("serial board: connected to")
    status, body = await daemon.request("POST", "/api/v1/actuators/pump", {"state": "on"})
    assert (status, body["state"]) == (200, "on")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    written = b""
    os.set_blocking(board.master, False)
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(board.master, 4096):
            written += chunk
    assert written.endswith(b"PUMP on\nPUMP off\n"), written
    assert "not connected" not in daemon.log()
    assert "pump off (the safe state at a stop)" in daemon.log()
