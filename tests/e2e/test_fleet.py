"""A fleet on one broker: twenty gateways that each get only their own commands, and
a Pi's local mosquitto bridged to a central broker with the shipped bridge config."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import Mosquitto, free_port, started, value_of, wait_until, write_config
from tests.integration.test_hub import send, watching

ROOT = Path(__file__).resolve().parents[2]


def gateway_config(tmp: Path, name: str, broker: Mosquitto) -> Path:
    directory = tmp / name
    directory.mkdir()
    return write_config(
        directory,
        f"""
        gateway: {{name: {name}, state_dir: {directory / "state"}, simulate: true}}
        mqtt: {{host: 127.0.0.1, port: {broker.port}, publish_states: true, commands: true}}
        homeassistant: {{discovery: true}}
        sensors:
          freezer: {{kind: virtual, unit: "°C"}}
        actuators:
          light: {{gpio: 27}}
        server: {{listen: 127.0.0.1:{free_port()}}}
        """,
    )


async def test_twenty_gateways_on_one_broker_each_get_only_their_own_commands(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    names = [f"gw{n:02d}" for n in range(20)]
    async with (
        watching(mosquitto, "gateway/#", "homeassistant/#") as centre,
        contextlib.AsyncExitStack() as stack,
    ):
        gateways = [
            await stack.enter_async_context(
                started(gateway_config(tmp_path, name, mosquitto), signals=False)
            )
            for name in names
        ]
        for name in names:
            await centre.wait(f"gateway/{name}/status", "online", timeout=15)
        for name in names[::2]:  # commands for every other gateway
            await send(mosquitto, f"gateway/{name}/light/set", "on")
        for name in names[::2]:
            await centre.wait(f"gateway/{name}/light/state", "on")
        for n, gateway in enumerate(gateways):
            assert gateway.control is not None
            await gateway.control.set_sensor("freezer", -20.0 - n, "test")
        for n, name in enumerate(names):
            await centre.wait(f"gateway/{name}/freezer/state", f"{-20.0 - n}")
        states = {
            name: gateway.control.actuator("light").state
            for name, gateway in zip(names, gateways, strict=True)
            if gateway.control is not None
        }
        assert states == {name: "on" if i % 2 == 0 else "off" for i, name in enumerate(names)}
        configs = {t: centre.config(t) for t in centre.retained if t.startswith("homeassistant/")}
        assert len(configs) == 40  # a sensor and a switch each
        unique_ids = [c["unique_id"] for c in configs.values()]
        assert len(set(unique_ids)) == 40
        assert {c["device"]["identifiers"][0] for c in configs.values()} == {
            f"edge-gateway-{name}" for name in names
        }


def bridge(central: Mosquitto, name: str) -> str:
    """The shipped bridge config, pointed at the test's central broker (no TLS)."""
    text = (ROOT / "hardware" / "mosquitto-bridge.conf").read_text()
    lines = [
        line
        for line in text.splitlines()
        if line.strip()
        and not line.startswith("#")
        and not line.startswith(("bridge_cafile", "remote_username", "remote_password"))
    ]
    conf = "\n".join(lines).replace("porch-pi", name)
    return re.sub(r"address \S+", f"address 127.0.0.1:{central.port}", conf) + "\n"


async def retained(broker: Mosquitto, topic: str) -> bytes | None:
    """What ``broker`` holds retained on ``topic`` (a fresh client reads it)."""
    return await asyncio.to_thread(_read_retained, broker, topic)


def _read_retained(broker: Mosquitto, topic: str) -> bytes | None:
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"read-{free_port()}")
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.connect("127.0.0.1", broker.port)
    client.subscribe(topic, 1)
    for _ in range(20):
        client.loop(0.05)
        if got:
            break
    client.disconnect()
    return got[-1] if got else None


async def test_a_bridged_pair_carries_commands_down_and_states_up_across_an_outage(
    tmp_path: Path,
) -> None:
    central = Mosquitto(tmp_path / "central")
    central.start()
    local = Mosquitto(tmp_path / "local", extra=bridge(central, "pi"))
    local.start()
    try:
        async with started(gateway_config(tmp_path, "pi", local)) as gateway:
            control = gateway.control
            assert control is not None
            await wait_until(
                lambda: retained(central, "gateway/pi/status"), lambda v: v == b"online"
            )
            await wait_until(  # the announcements reach the centre
                lambda: retained(central, "homeassistant/switch/pi/light/config"),
                lambda v: v is not None,
            )
            await send(central, "gateway/pi/light/set", "on")  # from the centre
            await wait_until(lambda: value_of(control.actuator("light").state), lambda s: s == "on")

            central.stop()  # the uplink is down
            await control.set_sensor("freezer", -7.5, "test")  # published to the local broker
            assert control.actuator("light").state == "on"  # the local side carries on
            central.start()
            await wait_until(
                lambda: retained(central, "gateway/pi/freezer/state"),
                lambda v: v == b"-7.5",
                timeout=30,
            )
            status = await control.status()
            assert status.inputs["mqtt"]["reconnects"] == 0  # its own session never noticed
    finally:
        local.stop()
        central.stop()
