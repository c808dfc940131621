"""The MQTT link against a real mosquitto: wildcards, payloads, publishes, status,
broker restarts and messages sent while the gateway was away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiomqtt
import pytest

from gateway.config.connections import MqttSection, MqttSensor
from gateway.events import Value
from gateway.inputs.mqtt import MqttLink
from gateway.inputs.mqttclient import Client
from tests.conftest import Board, Mosquitto


class Seen:
    def __init__(self) -> None:
        self.readings: list[tuple[str, Value]] = []
        self.messages: list[tuple[str, Any]] = []
        self.lost: list[tuple[list[str], str]] = []

    def gone(self, sensors: list[str], why: str) -> None:
        self.lost.append((sensors, why))

    def reading(self, sensor: str, value: Value) -> None:
        self.readings.append((sensor, value))

    def message(self, topic: str, payload: Any) -> None:
        self.messages.append((topic, payload))

    async def wait(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.readings) + len(self.messages) < count:
                await asyncio.sleep(0.01)


SENSORS = {
    "room_temp": MqttSensor(
        mqtt="home/+/temperature", value="{{ payload.celsius }}", kind="number"
    ),
    "garage_door": MqttSensor(mqtt="home/garage/door", kind="text"),
}


def link(broker: Mosquitto, seen: Seen, **kw: Any) -> MqttLink:
    config = MqttSection(host="127.0.0.1", port=broker.port, client_id="test-gw", **kw)
    return MqttLink(
        config, "test", SENSORS, ["alarm/#"], seen.reading, seen.message, on_lost=seen.gone
    )


@contextlib.asynccontextmanager
async def running(mqtt: MqttLink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(mqtt.run())
    async with asyncio.timeout(10):
        while mqtt.state != "connected":
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # subscriptions done
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def publish(broker: Mosquitto, topic: str, payload: str, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="tester") as client:
        await client.publish(topic, payload.encode(), qos=1, retain=retain)


async def test_wildcards_json_and_raw_payloads_and_triggers(mosquitto: Mosquitto) -> None:
    seen = Seen()
    async with running(link(mosquitto, seen)):
        await publish(mosquitto, "home/kitchen/temperature", '{"celsius": 21.5}')
        await publish(mosquitto, "home/garage/door", "open")
        await publish(mosquitto, "home/kitchen/temperature", "not json at all")
        await publish(mosquitto, "alarm/front", '{"armed": true}')
        await seen.wait(3)
        await asyncio.sleep(0.2)
    assert seen.readings == [("room_temp", 21.5), ("garage_door", "open")]
    assert seen.messages == [("alarm/front", {"armed": True})]


@pytest.mark.parametrize("version", ["3.1.1", "5"])
async def test_messages_sent_while_the_gateway_was_away_arrive_after_it_starts(
    mosquitto: Mosquitto, version: str
) -> None:
    seen = Seen()
    async with running(link(mosquitto, seen, version=version)):
        pass  # the first run creates the persistent session and its subscriptions
    await publish(mosquitto, "home/garage/door", "closed")  # while we are away
    async with running(link(mosquitto, seen, version=version)):
        await seen.wait(1)
    assert seen.readings == [("garage_door", "closed")]


async def test_a_broker_restart_loses_no_qos1_message(mosquitto: Mosquitto) -> None:
    seen = Seen()
    mqtt = link(mosquitto, seen)
    async with running(mqtt):
        await publish(mosquitto, "home/garage/door", "one")
        await seen.wait(1)
        mosquitto.stop()
        async with asyncio.timeout(5):
            while mqtt.state == "connected":
                await asyncio.sleep(0.01)
        assert seen.lost == [(["room_temp", "garage_door"], "mqtt broker lost")]
        mosquitto.start()
        await publish(mosquitto, "home/garage/door", "two")  # before we are back
        async with asyncio.timeout(15):
            while mqtt.state != "connected":
                await asyncio.sleep(0.05)
        await seen.wait(2, timeout=10)
    assert seen.readings == [("garage_door", "one"), ("garage_door", "two")]
    assert mqtt.reconnects >= 1
    assert len(seen.lost) == 1  # once per outage, not once per failed reconnect


async def test_publish_status_topic_and_last_will(mosquitto: Mosquitto) -> None:
    got: list[tuple[str, str, bool]] = []

    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="watcher") as watcher:
        await watcher.subscribe("gateway/test/status", qos=1)
        await watcher.subscribe("siren/set", qos=1)

        async def collect() -> None:
            async for message in watcher.messages:
                got.append((str(message.topic), bytes(message.payload).decode(), message.retain))

        collector = asyncio.create_task(collect())
        seen = Seen()
        mqtt = link(mosquitto, seen)
        mqtt.publish("siren/set", "on", 1, False)  # before connecting: kept, sent on connect
        async with running(mqtt):
            mqtt.publish("siren/set", "off", 1, False)
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.3)
        collector.cancel()
    assert ("gateway/test/status", "online", False) in got
    assert [p for t, p, _ in got if t == "siren/set"] == ["on", "off"]
    assert got[-1][:2] == ("gateway/test/status", "offline")  # said on a clean stop


async def test_no_broker_is_reported_and_retried(mosquitto: Mosquitto) -> None:
    mosquitto.stop()
    seen = Seen()
    mqtt = link(mosquitto, seen)
    task = asyncio.create_task(mqtt.run())
    await asyncio.sleep(1.5)
    assert mqtt.state == "disconnected"
    assert mqtt.reconnects >= 1
    mosquitto.start()
    async with asyncio.timeout(10):
        while mqtt.state != "connected":
            await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_mqtt_and_serial_actuators_send_their_state(
    tmp_path: Any, mosquitto: Mosquitto, board: Board
) -> None:
    import os

    from tests.conftest import demo_like_config, free_port
    from tests.conftest import running as gateway_running  # this module has its own running

    device = board.link
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    config.write_text(
        config.read_text()
        .replace(
            "sensors:\n",
            f"mqtt: {{host: 127.0.0.1, port: {mosquitto.port}}}\n"
            f"serial: {{board: {{port: {device}, format: raw}}}}\nsensors:\n",
        )
        .replace(
            "actuators:\n",
            'actuators:\n  siren: {mqtt: home/siren/set, payload: \'{"state": "{{ state }}"}\'}\n'
            '  display: {serial: board, command: "SHOW {{ state }}\\n"}\n',
        )
    )
    got: list[str] = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="siren") as siren:
        await siren.subscribe("home/siren/set", qos=1)
        async with gateway_running(config) as gw:
            async with asyncio.timeout(10):
                while (
                    not gw.ready
                    or gw.live.connections.states()["serial:board"]["state"] != ("connected")
                    or gw.live.connections.states()["mqtt"]["state"] != "connected"
                ):
                    await asyncio.sleep(0.05)
            assert gw.switch("siren", True, None, "test").state == "on"
            assert gw.switch("display", True, None, "test").state == "on"
            async with asyncio.timeout(5):
                messages = aiter(siren.messages)
                for _ in range(2):
                    got.append(bytes((await anext(messages)).payload).decode())
            assert os.read(board.master, 100) == b"SHOW on\n"
    assert got == ['{"state": "off"}', '{"state": "on"}']  # announced at start, then switched


async def test_tls_to_the_broker(tmp_path: Any) -> None:
    from tests.conftest import free_port
    from tests.integration.test_hooks import self_signed

    cert, key = self_signed(tmp_path)
    broker = Mosquitto(tmp_path)
    tls_port = free_port()
    broker.conf.write_text(
        broker.conf.read_text() + f"listener {tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
    )
    broker.start()
    try:
        seen = Seen()
        for tls in ({"ca": str(cert)}, {"insecure": True}):
            config = MqttSection(host="127.0.0.1", port=tls_port, client_id="tls-gw", tls=tls)
            mqtt = MqttLink(config, "tls", SENSORS, [], seen.reading, seen.message)
            async with running(mqtt):
                assert mqtt.state == "connected"
        wrong = MqttSection(host="127.0.0.1", port=tls_port, client_id="tls-gw", tls=True)
        mqtt = MqttLink(wrong, "tls", SENSORS, [], seen.reading, seen.message)
        task = asyncio.create_task(mqtt.run())
        await asyncio.sleep(1.0)  # the self-signed certificate is not trusted by default
        assert mqtt.state == "disconnected"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        broker.stop()


class HeldCommits:
    """The outbox side of acknowledgements: commits finish only when told to."""

    def __init__(self, failing: int = 0, commit_window: float = 0.0) -> None:
        self.commit_window = commit_window
        self.marks = 0
        self.failing = failing  # this many messages' commits fail, then all succeed
        self.settled = 0  # "committed" up to this mark
        self.released = False  # ... and all from now on
        self.held: list[tuple[int, Callable[[int], object]]] = []

    def mark(self) -> int:
        self.marks += 1  # each message "submits" one webhook
        return self.marks

    def when_committed(self, number: int, callback: Callable[[int], object]) -> None:
        if self.released or number <= self.settled:
            asyncio.get_running_loop().call_soon(callback, max(self.settled, self.marks))
        else:
            self.held.append((number, callback))

    def release(self, upto: int | None = None) -> None:
        """Commit up to the mark ``upto``; without it everything, now and later."""
        self.released = upto is None
        self.settled = self.marks if upto is None else upto
        due = [(n, c) for n, c in self.held if n <= self.settled]
        self.held = [(n, c) for n, c in self.held if n > self.settled]
        for _, callback in due:
            callback(self.settled)

    def lost_between(self, since: int, upto: int) -> int:
        lost = 1 if self.failing else 0
        self.failing = max(self.failing - 1, 0)
        return lost


def acked_link(broker: Mosquitto, seen: Seen, commits: HeldCommits) -> MqttLink:
    config = MqttSection(host="127.0.0.1", port=broker.port, client_id="test-gw")
    return MqttLink(config, "test", SENSORS, ["alarm/#"], seen.reading, seen.message, commits)


async def test_a_message_is_acknowledged_only_after_its_webhooks_are_committed(
    mosquitto: Mosquitto,
) -> None:
    """Gone before the commit: the broker sends the message again to the session."""
    seen = Seen()
    async with running(acked_link(mosquitto, seen, HeldCommits())):
        await publish(mosquitto, "home/garage/door", "open")
        await seen.wait(1)
    # the commit never finished: no PUBACK went out, so the session still holds it
    again = Seen()
    commits = HeldCommits()
    commits.release()
    async with running(acked_link(mosquitto, again, commits)):
        await again.wait(1)
    assert again.readings == [("garage_door", "open")]
    done = Seen()
    async with running(acked_link(mosquitto, done, commits)):
        await asyncio.sleep(0.5)
    assert done.readings == []  # acknowledged at last: not sent a third time


async def test_messages_are_acknowledged_in_the_order_they_came_as_commits_settle(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MQTT wants PUBACKs in the order of the PUBLISHes: a message is acknowledged
    once its own webhooks and those of every message before it are committed."""
    acked: list[int] = []
    acknowledge = Client.acknowledge

    def recorded(client: Client, mids: Sequence[int]) -> None:
        acked.extend(mids)
        acknowledge(client, mids)

    monkeypatch.setattr(Client, "acknowledge", recorded)
    seen = Seen()
    commits = HeldCommits()
    async with running(acked_link(mosquitto, seen, commits)):
        for n in range(3):
            await publish(mosquitto, "home/garage/door", f"open {n}")
            await seen.wait(n + 1)
        await asyncio.sleep(0.1)
        assert acked == []  # nothing committed yet
        commits.release(upto=4)  # the second message's mark "after" (two marks a message)
        assert len(acked) == 2
        commits.release()
        async with asyncio.timeout(5):
            while len(acked) < 3:
                await asyncio.sleep(0.01)
    assert acked == sorted(acked)  # the broker numbers them in the order it sent them
    assert len(set(acked)) == 3


async def test_a_message_whose_webhooks_were_lost_is_sent_again(mosquitto: Mosquitto) -> None:
    seen = Seen()
    commits = HeldCommits(failing=1)
    mqtt = acked_link(mosquitto, seen, commits)
    async with running(mqtt):
        await publish(mosquitto, "home/garage/door", "open")
        await seen.wait(1)
        commits.release()  # the first commit failed: the link reconnects
        await seen.wait(2, timeout=15)
    assert seen.readings == [("garage_door", "open")] * 2
    assert mqtt.unacknowledged == 1


async def test_packets_larger_than_the_socket_takes_at_once_go_out_whole(
    mosquitto: Mosquitto,
) -> None:
    """The link's client writes from the loop at once; what the socket does not take
    waits for a writer (8 MiB is far more than a local socket's buffer)."""
    big = bytes(range(256)) * (8 * 4096)
    async with (
        Client("127.0.0.1", mosquitto.port, identifier="big-reader") as reader,
        Client("127.0.0.1", mosquitto.port, identifier="big-writer") as writer,
    ):
        await reader.subscribe("big/#", qos=1)  # acknowledged by paho, inside its read
        async with asyncio.timeout(20):
            for n in range(3):  # one after the other, the last two queued behind the first
                writer._client.publish(f"big/{n}", big, qos=1)
            got = []
            async for message in reader.messages:
                got.append((str(message.topic), message.payload))
                if len(got) == 3:
                    break
    assert [topic for topic, _ in got] == ["big/0", "big/1", "big/2"]
    assert all(payload == big for _, payload in got)


async def test_with_a_commit_window_held_acknowledgements_do_not_hold_the_stream(
    mosquitto: Mosquitto,
) -> None:
    """PUBACKs wait for the window: the link's reader sends TCP's acknowledgement after
    every read instead (a broker using Nagle's algorithm, as mosquitto does by default,
    would hold each small message until then). Every message arrives, in order, while
    none is acknowledged; once the commits finish, none comes again."""
    seen = Seen()
    commits = HeldCommits(commit_window=0.02)
    mqtt = acked_link(mosquitto, seen, commits)
    async with running(mqtt):
        await asyncio.wait_for(mqtt._caught_up.wait(), 10)  # its client is in use
        assert isinstance(mqtt._client, Client)
        assert mqtt._client.quick_ack
        for n in range(20):
            await publish(mosquitto, "home/garage/door", f"open {n}")
            await seen.wait(n + 1)
        commits.release()
        await asyncio.sleep(0.3)  # the acknowledgements leave
    assert seen.readings == [("garage_door", f"open {n}") for n in range(20)]
    again = Seen()
    async with running(acked_link(mosquitto, again, commits)):
        await asyncio.sleep(0.5)
    assert again.readings == []
    plain = acked_link(mosquitto, Seen(), HeldCommits())
    async with running(plain):
        await asyncio.wait_for(plain._caught_up.wait(), 10)
        assert isinstance(plain._client, Client)
        assert not plain._client.quick_ack
