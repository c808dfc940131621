"""The gateway on a shared broker, through a real mosquitto: retained states, commands
with their echo, Home Assistant discovery, removal on reload, garbage commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import Mosquitto, edited, free_port, started, wait_until, write_config


class Watcher:
    """A client subscribed to everything: the last retained payload per topic, and
    every message in order."""

    def __init__(self) -> None:
        self.retained: dict[str, bytes] = {}
        self.messages: list[tuple[str, bytes]] = []

    async def wait(self, topic: str, payload: bytes | str, timeout: float = 5.0) -> None:
        want = payload.encode() if isinstance(payload, str) else payload

        async def last() -> bytes | None:
            return next((p for t, p in reversed(self.messages) if t == topic), None)

        await wait_until(last, lambda got: got == want, timeout)

    def config(self, topic: str) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.retained[topic])
        return payload


@contextlib.asynccontextmanager
async def watching(broker: Mosquitto, *filters: str) -> AsyncIterator[Watcher]:
    """A paho client on its own thread (independent of the gateway's event loop)."""
    watcher = Watcher()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{free_port()}")
    subscribed = threading.Event()

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        c.subscribe([(topic, 1) for topic in filters or ("#",)])

    def on_subscribe(c: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        subscribed.set()

    def on_message(c: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        payload = bytes(m.payload)
        watcher.messages.append((m.topic, payload))
        if payload:
            watcher.retained[m.topic] = payload
        else:
            watcher.retained.pop(m.topic, None)

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        await asyncio.to_thread(subscribed.wait, 5)
        yield watcher
    finally:
        client.disconnect()
        client.loop_stop()


async def send(broker: Mosquitto, topic: str, payload: bytes | str, retain: bool = False) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"cmd-{free_port()}") as c:
        await c.publish(topic, data, qos=1, retain=retain)


def hub_config(tmp: Path, broker: Mosquitto, name: str = "pi1", extra: str = "") -> Path:
    return write_config(
        tmp,
        f"""
        gateway: {{name: {name}, state_dir: {tmp / "state"}, simulate: true}}
        mqtt:
          host: 127.0.0.1
          port: {broker.port}
          publish_states: true
          commands: true
        homeassistant: {{discovery: true}}
        sensors:
          hallway_motion: {{gpio: 17, kind: motion}}
          freezer_temp: {{kind: virtual, unit: "°C", device_class: temperature}}
          door: {{kind: virtual, type: binary, device_class: door}}
        actuators:
          hallway_light: {{gpio: 27, kind: relay, max_on: 1h}}
          dimmer: {{gpio: 18, kind: pwm}}
          siren: {{gpio: 22, commands: false}}
        server: {{listen: 127.0.0.1:{free_port()}}}
        {extra}
        """,
    )


async def test_states_commands_and_their_echo_through_a_real_broker(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with watching(mosquitto) as seen, started(hub_config(tmp_path, mosquitto)) as gw:
        control = gw.control
        assert control is not None
        await seen.wait("gateway/pi1/status", "online")
        await seen.wait("gateway/pi1/hallway_light/state", "off")
        await seen.wait("gateway/pi1/dimmer/state", "0.0")
        await seen.wait("gateway/pi1/hallway_motion/state", "off")  # read at start

        await control.set_sensor("freezer_temp", -18.5, "test")
        await seen.wait("gateway/pi1/freezer_temp/state", "-18.5")
        await control.set_sensor("door", True, "test")
        await seen.wait("gateway/pi1/door/state", "on")

        await send(mosquitto, "gateway/pi1/hallway_light/set", "ON")
        await seen.wait("gateway/pi1/hallway_light/state", "on")
        assert control.actuator("hallway_light").state == "on"
        await send(mosquitto, "gateway/pi1/hallway_light/set", "on")  # no change: echoed
        await wait_until(
            lambda: _count(seen, "gateway/pi1/hallway_light/state", b"on"), lambda n: n == 2
        )
        await send(mosquitto, "gateway/pi1/hallway_light/set", '{"state": "off"}')
        await seen.wait("gateway/pi1/hallway_light/state", "off")
        await send(mosquitto, "gateway/pi1/hallway_light/set", '{"state": "on", "for": "300ms"}')
        await seen.wait("gateway/pi1/hallway_light/state", "on")
        await seen.wait("gateway/pi1/hallway_light/state", "off")  # the for ran out
        await send(mosquitto, "gateway/pi1/hallway_light/set", '{"state": "on", "for": "2h"}')
        await send(mosquitto, "gateway/pi1/dimmer/set", "0.4")
        await seen.wait("gateway/pi1/dimmer/state", "0.4")
        assert control.actuator("hallway_light").state == "off"  # 2h > max_on: refused
        await send(mosquitto, "gateway/pi1/siren/set", "on")  # takes no commands
        await send(mosquitto, "gateway/pi1/dimmer/set", "toggle")
        await seen.wait("gateway/pi1/dimmer/state", "0.0")
        assert control.actuator("siren").state == "off"
        assert gw.control is not None
        assert gw.control.live.hub.bad_commands == 1  # the 2h


def _count(seen: Watcher, topic: str, payload: bytes) -> Any:
    async def count() -> int:
        return sum(1 for t, p in seen.messages if (t, p) == (topic, payload))

    return count()


async def test_discovery_announces_each_device_as_home_assistant_documents_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with (
        watching(mosquitto, "homeassistant/#") as seen,
        started(hub_config(tmp_path, mosquitto)),
    ):
        topics = {
            "homeassistant/binary_sensor/pi1/hallway_motion/config",
            "homeassistant/sensor/pi1/freezer_temp/config",
            "homeassistant/binary_sensor/pi1/door/config",
            "homeassistant/switch/pi1/hallway_light/config",
            "homeassistant/light/pi1/dimmer/config",
            "homeassistant/binary_sensor/pi1/siren/config",  # shown, not switched
        }
        await wait_until(lambda: _value(set(seen.retained)), lambda got: got == topics)
        before = len(seen.messages)
        await send(mosquitto, "homeassistant/status", "online")  # Home Assistant restarted
        await wait_until(
            lambda: _value({t for t, _ in seen.messages[before:]}),
            lambda again: topics <= again,  # every announcement again
        )
    motion = seen.config("homeassistant/binary_sensor/pi1/hallway_motion/config")
    assert motion["device_class"] == "motion"
    assert (motion["payload_on"], motion["payload_off"]) == ("on", "off")
    assert motion["state_topic"] == "gateway/pi1/hallway_motion/state"
    assert motion["unique_id"] == "pi1_hallway_motion"
    assert motion["availability"][0] == {
        "topic": "gateway/pi1/status",
        "payload_available": "online",
        "payload_not_available": "offline",
    }
    assert motion["device"]["identifiers"] == ["edge-gateway-pi1"]
    freezer = seen.config("homeassistant/sensor/pi1/freezer_temp/config")
    assert (freezer["unit_of_measurement"], freezer["device_class"]) == ("°C", "temperature")
    assert freezer["state_class"] == "measurement"
    light = seen.config("homeassistant/switch/pi1/hallway_light/config")
    assert light["command_topic"] == "gateway/pi1/hallway_light/set"
    assert (light["state_on"], light["state_off"]) == ("on", "off")
    dimmer = seen.config("homeassistant/light/pi1/dimmer/config")
    assert dimmer["brightness_command_topic"] == "gateway/pi1/dimmer/set"
    assert motion["device"]["configuration_url"].endswith("/api/v1/status")
    for config in map(seen.config, topics):  # what HA requires of every component
        assert {"state_topic", "unique_id", "device", "availability"} <= set(config)


async def _value(value: Any) -> Any:
    return value


async def test_a_reload_and_a_restart_remove_what_is_no_longer_there(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = hub_config(tmp_path, mosquitto)
    siren = "homeassistant/binary_sensor/pi1/siren/config"
    async with watching(mosquitto, "homeassistant/#", "gateway/#") as seen:
        async with started(config) as gw:
            await wait_until(lambda: _value(siren in seen.retained), bool)
            config.write_text(
                edited(config.read_text(), ("siren: {gpio: 22, commands: false}", ""))
            )
            gw.reload()
            await wait_until(lambda: _value(siren in seen.retained), lambda there: not there)
            await wait_until(
                lambda: _value("gateway/pi1/siren/state" in seen.retained), lambda t: not t
            )
        # a device announced by an older config while this gateway was off
        await send(
            mosquitto, "homeassistant/switch/pi1/old_pump/config", '{"name": "x"}', retain=True
        )
        await send(mosquitto, "gateway/pi1/old_pump/state", "on", retain=True)
        await wait_until(lambda: _value("gateway/pi1/old_pump/state" in seen.retained), bool)
        async with started(config):
            await wait_until(
                lambda: _value("homeassistant/switch/pi1/old_pump/config" in seen.retained),
                lambda there: not there,
            )
            await wait_until(
                lambda: _value("gateway/pi1/old_pump/state" in seen.retained), lambda t: not t
            )
            assert "homeassistant/switch/pi1/hallway_light/config" in seen.retained


async def test_states_are_retained_across_a_restart_and_unavailable_is_published(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = hub_config(tmp_path, mosquitto)
    config.write_text(
        edited(config.read_text(), ("device_class: temperature}", "stale_after: 1s}"))
    )
    async with started(config) as gw:
        assert gw.control is not None
        await gw.control.set_sensor("freezer_temp", -20.0, "test")
    async with watching(mosquitto, "gateway/pi1/#") as seen:  # the gateway is stopped
        await wait_until(
            lambda: _value(seen.retained.get("gateway/pi1/freezer_temp/state")),
            lambda v: v == b"-20.0",
        )
        await seen.wait("gateway/pi1/status", "offline")  # said on the way out
        async with started(config):
            await seen.wait("gateway/pi1/status", "online")
            await seen.wait("gateway/pi1/freezer_temp/state", "unavailable", timeout=5)


async def test_a_thousand_garbage_commands_change_nothing_and_a_good_one_still_works(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    rng = random.Random(16)
    async with (
        watching(mosquitto, "gateway/pi1/#") as seen,
        started(hub_config(tmp_path, mosquitto)) as gw,
    ):
        control = gw.control
        assert control is not None
        await seen.wait("gateway/pi1/status", "online")
        garbage = [
            b"",
            b"\xff\xfe",
            b"{",
            b'{"state": "on", "for": "forever"}',
            b'{"state": {"nested": [1, 2]}}',
            b"[" * 5000,
            b"2",
            b"-1",
            b"nan",
            b'{"state": "on", "extra": 1}',
        ]
        garbage += [rng.randbytes(rng.randint(0, 300)) for _ in range(990)]
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="fuzz") as c:
            for payload in garbage:
                await c.publish("gateway/pi1/hallway_light/set", payload, qos=1)
            await c.publish("gateway/pi1/hallway_light/set", b"on", qos=1)
        await seen.wait("gateway/pi1/hallway_light/state", "on", timeout=15)
        assert control.live.hub.commands == 1001
        assert control.live.hub.bad_commands >= 990
        status = await control.status()
        assert status.inputs["mqtt"]["state"] == "connected"


async def test_a_split_wildcard_sensor_gives_one_sensor_per_topic(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = hub_config(
        tmp_path,
        mosquitto,
        extra="""
        rules:
          - id: hot_room
            when: {sensor: room_temp, above: 30}
            then: [{mqtt_publish: alerts/hot, payload: "{{ event.sensor }} {{ event.value }}"}]
        """,
    )
    config.write_text(
        edited(
            config.read_text(),
            (
                "  door: {kind: virtual, type: binary, device_class: door}\n",
                "  door: {kind: virtual, type: binary, device_class: door}\n"
                "  room_temp: {mqtt: home/+/temp, kind: number, split: true, unit: °C}\n",
            ),
        )
    )
    async with watching(mosquitto, "gateway/pi1/#", "homeassistant/#", "alerts/#") as seen:
        async with started(config) as gw:
            control = gw.control
            assert control is not None
            await seen.wait("gateway/pi1/status", "online")
            await send(mosquitto, "home/kitchen/temp", "21.5")
            await send(mosquitto, "home/hall/temp", "19")
            await send(mosquitto, "home/x y/temp", "19")  # not a sensor name: counted
            await seen.wait("gateway/pi1/room_temp_kitchen/state", "21.5")
            await seen.wait("gateway/pi1/room_temp_hall/state", "19.0")
            views = control.sensors()
            assert views["room_temp_kitchen"].group == "room_temp"
            assert views["room_temp_hall"].value == 19.0
            await send(mosquitto, "home/kitchen/temp", "31")  # each member crosses on its own
            await send(mosquitto, "home/hall/temp", "32")
            await seen.wait("alerts/hot", "room_temp_hall 32.0")
            assert (b"room_temp_kitchen 31.0") in [p for t, p in seen.messages if t == "alerts/hot"]
            kitchen = "homeassistant/sensor/pi1/room_temp__room_temp_kitchen/config"
            assert seen.config(kitchen)["unit_of_measurement"] == "°C"
            assert seen.config(kitchen)["state_topic"] == "gateway/pi1/room_temp_kitchen/state"
            status = await control.status()
            assert status.inputs["mqtt"]["bad_values"] == 1
        async with started(config):  # a restart does not drop members it has not heard yet
            await seen.wait("gateway/pi1/status", "online")
            await asyncio.sleep(0.3)
            assert kitchen in seen.retained
