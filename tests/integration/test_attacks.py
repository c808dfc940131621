"""Each way the gateway's promises broke under attack, as a test of its own.

The numbers are those of the hardening issue: a hostile MQTT message, a
full disk, lone surrogates and non-finite numbers, malformed headers, a
hostile Retry-After, the replay race, slow-loris clients, failed-auth
lockouts, token scopes, a damaged timers.json and secrets in config errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import ConfigError, load_config
from gateway.config.connections import MqttSection, MqttSensor, SerialPort
from gateway.control import Control
from gateway.errors import OutboxError
from gateway.inputs.mqtt import MqttLink
from gateway.inputs.serial import SerialInput
from gateway.outbox.store import OutboxStore
from gateway.rules.timers import TimerTable
from gateway.signing import sign
from tests.conftest import SECRET, TOKEN, Mosquitto, Receiver, free_port, running, write_config

pytestmark = pytest.mark.timeout(60)

FAN_ONLY = "fan-only-token-0123456789"
MOTION_ONLY = "motion-only-token-0123456789"
VIEWER = "viewer-token-0123456789"
OUTBOX_READER = "outbox-reader-token-0123456789"


def attack_config(tmp: Path, port: int, receiver_url: str, state_dir: Path | None = None) -> Path:
    return write_config(
        tmp,
        f"""
        gateway: {{name: attacked, state_dir: {state_dir or tmp / "state"}, simulate: true}}
        sensors:
          hallway_motion: {{gpio: 17, kind: motion}}
          note: {{kind: virtual, type: text}}
          level: {{kind: virtual, type: number}}
        actuators:
          hallway_light: {{gpio: 27, kind: relay}}
          fan: {{gpio: 22, kind: relay}}
        webhooks:
          home_hub: {{url: {receiver_url}, secret: {SECRET}, retry: [100ms]}}
        server:
          listen: 127.0.0.1:{port}
          body_timeout: 1s
          max_in_flight: 16
          tokens:
            tester: {{token: {TOKEN}}}
            viewer: {{token: {VIEWER}, read_only: true}}
            fan_only: {{token: {FAN_ONLY}, actuators: [fan]}}
            motion_only: {{token: {MOTION_ONLY}, sensors: [hallway_motion]}}
            outbox_reader: {{token: {OUTBOX_READER}, read_only: true, outbox: true, sensors: []}}
          hooks:
            hub: {{verify: standard-webhooks, secret: {SECRET}}}
            door: {{verify: token, token: door-token-0123456789, header: X-Door-Token}}
        rules:
          - id: motion_hook
            when: {{sensor: hallway_motion, to: on}}
            then:
              - webhook: home_hub
                event: motion.detected
          - id: note_hook
            when: {{sensor: note}}
            then:
              - webhook: home_hub
                event: note.changed
                data: {{note: "{{{{ event.value }}}}"}}
          - id: hub_hook
            when: {{hook: hub}}
            then:
              - webhook: home_hub
                event: hub.called
                data: {{payload: "{{{{ event.payload }}}}"}}
        """,
    )


@pytest.fixture
async def gateway(tmp_path: Path, receiver: Receiver) -> AsyncIterator[tuple[str, Control]]:
    port = free_port()
    async with running(attack_config(tmp_path, port, receiver.url)) as gw:
        yield f"http://127.0.0.1:{port}", gw


async def call(
    base: str, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, base + path, data=body, headers=headers) as r,
    ):
        text = await r.text()
        return r.status, json.loads(text) if r.content_type == "application/json" else text


def signed(body: bytes, msg_id: str) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(SECRET, msg_id, stamp, body),
        "Content-Type": "application/json",
    }


async def raw_request(base: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes no HTTP client would; the answer's status line and headers."""
    port = int(base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read(4096)
    finally:
        writer.close()


# ---------------------------------------------------------------------- 1. one message


SENSORS = {
    "garage_door": MqttSensor(mqtt="home/garage/door", kind="text"),
    "room_temp": MqttSensor(mqtt="home/+/temp", kind="number"),
}


async def test_bug1_a_deeply_nested_mqtt_payload_does_not_stop_the_link(
    mosquitto: Mosquitto,
) -> None:
    import aiomqtt

    readings: list[tuple[str, Any]] = []
    config = MqttSection(host="127.0.0.1", port=mosquitto.port, client_id="attacked")
    triggers: list[str] = []
    mqtt = MqttLink(
        config,
        "t",
        SENSORS,
        ["alarm/#"],
        lambda s, v: readings.append((s, v)),
        lambda topic, payload: triggers.append(topic),
    )
    task = asyncio.create_task(mqtt.run())
    try:
        async with asyncio.timeout(10):
            while mqtt.state != "connected":
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish("home/kitchen/temp", b"[" * 3000 + b"]" * 3000, qos=1)
            await client.publish("alarm/x", b"[" * 3000 + b"]" * 3000, qos=1)
            await client.publish("home/kitchen/temp", b"1e999", qos=1)
            await client.publish("home/kitchen/temp", b"NaN", qos=1)
            await client.publish("home/kitchen/temp", b"21.5", qos=1)
        async with asyncio.timeout(10):
            while ("room_temp", 21.5) not in readings:
                await asyncio.sleep(0.01)
        assert not task.done()
        assert readings == [("room_temp", 21.5)]  # neither the brackets nor inf nor NaN
        assert mqtt.bad_values == 3
        assert triggers == ["alarm/x"]  # a trigger gets the text: rules decide
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_bug1_any_exception_while_handling_a_message_is_counted_not_raised() -> None:
    def broken(sensor: str, value: Any) -> None:
        raise RuntimeError("a bug downstream")

    config = MqttSection(host="127.0.0.1", port=1, client_id="x")
    mqtt = MqttLink(config, "t", SENSORS, [], broken, lambda topic, payload: None)
    mqtt.handle("home/garage/door", b"open")
    assert mqtt.malformed == 1


def test_bug1_a_deeply_nested_serial_json_line_is_malformed_not_fatal() -> None:
    port = SerialPort.model_validate({"port": "/dev/null", "format": "json", "max_line": 100_000})
    seen: list[Any] = []
    serial = SerialInput("board", port, {"temp": "temp"}, lambda s, v: seen.append(v))
    serial.handle_line(b"[" * 50_000 + b"]" * 50_000)
    serial.handle_line(b'{"temp": 1e999}')
    serial.handle_line(b'{"temp": 20.5}')
    assert serial.malformed == 2
    assert seen == [20.5]


# ---------------------------------------------------------------------- 2. full disk


async def test_bug2_a_failed_commit_reaches_the_producer(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "outbox.db")
    store.start()
    try:
        mark = store.mark()
        store.submit("hub", "before.full", {"n": 1})
        await store.flushed(since=mark)  # stored: no error
        pages = await store.call(lambda db: db.execute("PRAGMA page_count").fetchone()[0])
        await store.call(lambda db: db.execute(f"PRAGMA max_page_count={pages}"))
        mark = store.mark()
        store.submit("hub", "while.full", {"blob": "x" * 200_000})
        with pytest.raises(OutboxError):
            await store.flushed(since=mark)
        mark = store.mark()  # an earlier failure is not the next producer's
        store.submit("hub", "small", {})
        await store.call(lambda db: db.execute("PRAGMA max_page_count=1073741823"))
        await store.flushed(since=mark)
    finally:
        store.stop()


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "2m") -> Iterator[Path]:
    """A real, small tmpfs mounted at ``path`` (as root, or root of a user namespace:
    see again_as_namespace_root)."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 4096):
                pass
    finally:
        os.close(fd)


def again_as_namespace_root(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Run this test once more, whole, as root of a user and mount namespace of its own
    (``unshare -rm``), where a user may mount a tmpfs; it must pass there."""
    allowed = shutil.which("unshare") and subprocess.run(["unshare", "-rm", "true"]).returncode == 0
    if not allowed:
        pytest.skip("mounting a small tmpfs needs root, or unprivileged user namespaces")
    pytest_args = ["-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'inner'}"]
    done = subprocess.run(
        ["unshare", "-rm", sys.executable, "-m", "pytest", *pytest_args, request.node.nodeid],
        cwd=request.config.rootpath,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
    assert "\n1 passed in" in done.stdout, done.stdout[-3000:]  # not skipped there


async def test_bug2_on_a_full_disk_no_yes_without_a_commit(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every 200 on a full filesystem has its webhook in the outbox; the rest are 503."""
    if os.geteuid() != 0:
        again_as_namespace_root(request, tmp_path)
        return
    with small_filesystem(tmp_path / "small") as state:
        port = free_port()
        config = attack_config(tmp_path, port, "http://127.0.0.1:9/down", state_dir=state)
        base = f"http://127.0.0.1:{port}"
        async with running(config) as gw:
            fill(state)
            answers = []
            for i in range(40):
                body = json.dumps({"value": f"note {i} " + "x" * 2000}).encode()
                answers.append((await call(base, "POST", "/api/v1/sensors/note", body))[0])
            assert set(answers) <= {200, 503}
            assert 503 in answers
            (state / "filler").unlink()
            await gw.outbox.flushed()
        db = sqlite3.connect(state / "outbox.db")
        stored = db.execute("SELECT count(*) FROM messages WHERE event = 'note.changed'")
        assert stored.fetchone()[0] >= answers.count(200)


# ---------------------------------------------------------------------- 3, 4. bad values


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/sensors/note", b'{"value": "\\ud800"}'),
        ("/api/v1/sensors/level", b'{"value": 1e999}'),
        ("/api/v1/sensors/level", b'{"value": NaN}'),
        ("/api/v1/sensors/level", b'{"value": -Infinity}'),
    ],
)
async def test_bugs3_4_surrogates_and_non_finite_numbers_are_400(
    gateway: tuple[str, Control], path: str, body: bytes
) -> None:
    status, answer = await call(gateway[0], "POST", path, body)
    assert status == 400, answer
    assert (await call(gateway[0], "GET", "/api/v1/sensors"))[0] == 200


async def test_bugs3_4_hook_payloads_with_surrogates_or_1e999_are_400(
    gateway: tuple[str, Control],
) -> None:
    base, _ = gateway
    async with aiohttp.ClientSession() as s:
        for i, body in enumerate([b'{"a": "\\ud800"}', b'{"a": 1e999}']):
            async with s.post(base + "/hooks/hub", data=body, headers=signed(body, f"m{i}")) as r:
                assert r.status == 400


async def test_bug3_every_emitted_body_is_valid_json(
    gateway: tuple[str, Control], receiver: Receiver
) -> None:
    """Header bytes that are not UTF-8 reach templates; the body stays valid JSON."""
    base, gw = gateway
    body = b'{"emoji": "\\ud83d\\ude00", "big": 12345678901234567890123}'
    assert (await call(base, "POST", "/api/v1/sensors/note", b'{"value": "a\\u00e9"}'))[0] == 200
    async with (
        aiohttp.ClientSession() as s,
        s.post(base + "/hooks/hub", data=body, headers=signed(body, "ok-1")) as r,
    ):
        assert r.status == 202
    for received in await receiver.wait_for(2):
        json.loads(received.body)  # strict: no NaN, no lone surrogate
        received.body.decode("utf-8")


# ---------------------------------------------------------------------- 5. headers


@pytest.mark.parametrize(
    "header",
    [
        b"webhook-timestamp: \xc2\xb2",  # a superscript two: isdigit() but not a number
        b"webhook-timestamp: \xef\xbc\x91\xef\xbc\x92",  # full-width digits
        b"webhook-id: \xff\xfe",
        b"webhook-signature: v1,\xff\xfe",
    ],
)
async def test_bug5_malformed_hook_headers_are_401_never_500(
    gateway: tuple[str, Control], header: bytes
) -> None:
    base, _ = gateway
    body = b"{}"
    good = signed(body, "msg-5")
    name = header.split(b":")[0].decode()
    lines = b"".join(f"{k}: {v}\r\n".encode() for k, v in good.items() if k != name)
    answer = await raw_request(
        base,
        b"POST /hooks/hub HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + lines
        + header
        + b"\r\nContent-Length: 2\r\n\r\n{}",
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:80]


async def test_a_malformed_request_is_one_warning_line_not_a_traceback(
    gateway: tuple[str, Control], caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = gateway
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            answer = await raw_request(
                base, b"GET / HTTP/1.1\r\nHost: x\r\nBad\x00Header: y\r\n\r\n"
            )
            assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400"))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    refused = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert len(refused) <= 1  # at most one line a minute
    assert all(r.exc_info is None for r in refused)


# ---------------------------------------------------------------------- 6. Retry-After


async def test_bug6_a_hostile_retry_after_backs_off_instead_of_a_hot_loop(tmp_path: Path) -> None:
    from gateway.config.models import WebhookEndpoint
    from gateway.config.storage import OutboxSection
    from gateway.outbox.service import Outbox

    posts = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal posts
        posts += 1
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 503 Busy\r\nRetry-After: \xc2\xb2\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n"
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = WebhookEndpoint.model_validate(
        {"url": f"http://127.0.0.1:{port}/", "secret": SECRET, "retry": ["100ms"]}
    )
    outbox = Outbox(tmp_path / "outbox.db", OutboxSection(), {"hub": endpoint}, jitter=lambda: 0.5)
    with outbox:
        task = asyncio.create_task(outbox.run())
        try:
            outbox.submit("hub", "x", {})
            await asyncio.sleep(2.0)  # what must NOT happen is a retry within this time
            assert 1 <= posts <= 2  # "²" is no Retry-After: a 503 waits 60 s
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            server.close()


# ---------------------------------------------------------------------- 7. replay race


async def test_bug7_thirty_concurrent_copies_of_one_request_act_once(
    gateway: tuple[str, Control], receiver: Receiver
) -> None:
    base, gw = gateway
    body = b'{"n": 7}'
    headers = signed(body, "msg-race")

    async def post(s: aiohttp.ClientSession) -> tuple[int, Any]:
        async with s.post(base + "/hooks/hub", data=body, headers=headers) as r:
            return r.status, await r.json()

    async with aiohttp.ClientSession() as s:
        answers = await asyncio.gather(*(post(s) for _ in range(30)))
    statuses = [status for status, _ in answers]
    assert statuses.count(202) == 1
    assert all(a.get("duplicate") for status, a in answers if status == 200)
    # beyond one client's share of the open slots: "busy, retry" (never a yes)
    assert set(statuses) <= {200, 202, 503}
    await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len([r for r in receiver.received if r.json["type"] == "hub.called"]) == 1


# ---------------------------------------------------------------------- 8. slow loris


async def trickle(base: str, path: str, stop: asyncio.Event) -> bytes:
    """An unauthenticated request whose body comes a byte at a time."""
    port = int(base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 60000\r\n\r\n".encode()
    )
    try:
        while not stop.is_set():
            writer.write(b" ")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    answer = await reader.read(200)
                    if answer:
                        return answer
        return b""
    except OSError:
        return b""
    finally:
        writer.close()


async def test_bug8_slow_loris_clients_never_starve_authenticated_ones(
    gateway: tuple[str, Control],
) -> None:
    base, _ = gateway
    stop = asyncio.Event()
    loris = [asyncio.create_task(trickle(base, "/hooks/hub", stop)) for _ in range(64)]
    await asyncio.sleep(0.3)
    try:
        statuses = [(await call(base, "GET", "/api/v1/status"))[0] for _ in range(10)]
        body = b'{"state": "on"}'
        statuses += [(await call(base, "POST", "/api/v1/actuators/fan", body))[0]]
        async with asyncio.timeout(5):  # server.body_timeout is 1s
            while not all(task.done() for task in loris):
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        answers = await asyncio.gather(*loris)
    assert statuses == [200] * 11
    assert any(a.startswith(b"HTTP/1.1 408") for a in answers)
    # the rest were refused a slot at once: one client holds at most a quarter of them
    assert any(a.startswith(b"HTTP/1.1 503") for a in answers)


async def test_a_body_that_trickles_is_408_in_time(gateway: tuple[str, Control]) -> None:
    base, _ = gateway
    stop = asyncio.Event()
    for path in ["/api/v1/sensors/note", "/hooks/hub", "/hooks/door"]:
        started = time.monotonic()
        answer = await asyncio.wait_for(trickle(base, path, stop), 5)
        if path.startswith("/api"):  # the token comes first: without one, 401 at once
            assert answer.startswith(b"HTTP/1.1 401")
            continue
        assert answer.startswith(b"HTTP/1.1 408"), answer[:60]
        assert time.monotonic() - started < 3  # server.body_timeout: 1s


async def test_an_oversized_content_length_is_413_before_the_body(
    gateway: tuple[str, Control],
) -> None:
    answer = await raw_request(
        gateway[0],
        b"POST /hooks/hub HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413")


# ---------------------------------------------------------------------- 9. lockouts


async def test_bug9_failures_at_one_hook_do_not_lock_out_other_doors(
    gateway: tuple[str, Control],
) -> None:
    base, _ = gateway
    async with aiohttp.ClientSession() as s:
        for i in range(12):  # a misconfigured sender guessing at the door hook
            headers = {"X-Door-Token": f"wrong-{i}", "Content-Type": "application/json"}
            async with s.post(base + "/hooks/door", data=b"{}", headers=headers) as r:
                assert r.status == (401 if i < 10 else 429)
        body = b"{}"
        async with s.post(base + "/hooks/hub", data=body, headers=signed(body, "m-9")) as r:
            assert r.status == 202
    assert (await call(base, "GET", "/api/v1/status"))[0] == 200


# ---------------------------------------------------------------------- 10. scopes

ALL = {TOKEN, VIEWER, FAN_ONLY, MOTION_ONLY, OUTBOX_READER}
SCOPE_TABLE: dict[tuple[str, str], tuple[str, set[str]]] = {
    # (method, route): (a concrete path, the tokens that may use it)
    ("GET", "/metrics"): ("/metrics", ALL),
    ("GET", "/api/v1/status"): ("/api/v1/status", ALL),
    ("GET", "/api/v1/sensors"): ("/api/v1/sensors", ALL),
    ("GET", "/api/v1/sensors/{id}"): ("/api/v1/sensors/note", ALL),
    ("POST", "/api/v1/sensors/{id}"): ("/api/v1/sensors/hallway_motion", {TOKEN, MOTION_ONLY}),
    ("GET", "/api/v1/actuators"): ("/api/v1/actuators", ALL),
    ("GET", "/api/v1/actuators/{id}"): ("/api/v1/actuators/fan", ALL),
    ("POST", "/api/v1/actuators/{id}"): ("/api/v1/actuators/fan", {TOKEN, FAN_ONLY}),
    ("GET", "/api/v1/outbox"): ("/api/v1/outbox", {TOKEN, VIEWER, OUTBOX_READER}),
    ("GET", "/api/v1/outbox/messages"): (
        "/api/v1/outbox/messages",
        {TOKEN, VIEWER, OUTBOX_READER},
    ),
    ("GET", "/api/v1/outbox/{id}"): ("/api/v1/outbox/msg_none", {TOKEN, VIEWER, OUTBOX_READER}),
    ("POST", "/api/v1/outbox/{id}/retry"): ("/api/v1/outbox/msg_none/retry", {TOKEN}),
    ("POST", "/api/v1/outbox/endpoints/{name}/enable"): (
        "/api/v1/outbox/endpoints/home_hub/enable",
        {TOKEN},
    ),
    ("GET", "/api/v1/openapi.json"): ("/api/v1/openapi.json", ALL),
    ("GET", "/api/v1/rules"): ("/api/v1/rules", ALL),
    ("GET", "/api/v1/rules/{id}"): ("/api/v1/rules/note_hook", ALL),
    ("GET", "/api/v1/rules/{id}/traces"): ("/api/v1/rules/note_hook/traces", ALL),
    ("POST", "/api/v1/rules/{id}/enable"): ("/api/v1/rules/note_hook/enable", {TOKEN}),
    ("POST", "/api/v1/rules/{id}/disable"): ("/api/v1/rules/nothing/disable", {TOKEN}),
    ("POST", "/api/v1/rules/{id}/run"): ("/api/v1/rules/nothing/run", {TOKEN}),
    ("GET", "/api/v1/sensors/{id}/history"): ("/api/v1/sensors/note/history", ALL),
    ("GET", "/api/v1/actuators/{id}/history"): ("/api/v1/actuators/fan/history", ALL),
    ("GET", "/api/v1/log-level"): ("/api/v1/log-level", ALL),
    ("POST", "/api/v1/log-level"): ("/api/v1/log-level", {TOKEN}),
    ("GET", "/api/v1/session"): ("/api/v1/session", ALL),
    ("DELETE", "/api/v1/session"): ("/api/v1/session", ALL),
    ("GET", "/api/v1/events"): (
        "/api/v1/events",
        ALL,
    ),  # a stream: tests/integration/test_stream.py
}
BODIES = {
    "sensors": b'{"value": "on"}',
    "actuators": b'{"state": "on"}',
    "log-level": b'{"level": "info"}',
}


def test_bug10_every_endpoint_is_in_the_scope_table() -> None:
    from gateway.api.server import ROUTES

    bearer = {(m, p) for m, p, _, scope in ROUTES if scope is not None}
    assert bearer == set(SCOPE_TABLE)


@pytest.mark.parametrize(
    "route", sorted(r for r in SCOPE_TABLE if r[1] != "/api/v1/events"), ids=" ".join
)
async def test_bug10_each_endpoint_against_each_token(
    gateway: tuple[str, Control], route: tuple[str, str]
) -> None:
    base, _ = gateway
    method, _ = route
    path, allowed = SCOPE_TABLE[route]
    body = next((b for k, b in BODIES.items() if k in path), b"") if method == "POST" else None
    for token in sorted(ALL):
        status, answer = await call(base, method, path, body, token=token)
        if token in allowed:
            assert status in (200, 404), (token, status, answer)
        else:
            assert status == 403, (token, status, answer)


# ---------------------------------------------------------------------- 11. timers.json


@pytest.mark.parametrize(
    "content",
    [
        b'[{"kind": "revert", "key": "fan", "due": "soon", "data": {}}]',
        b'{"kind": "revert"}',
        b"[1, null, []]",
        b"\xff\xfe garbage",
        b'[{"kind": "revert", "key": "fan", "due": 1e999}]',
    ],
)
def test_bug11_a_damaged_timers_file_is_logged_and_skipped(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "timers.json"
    good = b'{"kind": "revert", "key": "light", "due": 1000.0, "data": {"state": false}}'
    path.write_bytes(content.replace(b"[", b"[" + good + b", ", 1) if b"[" in content else content)
    table = TimerTable(path)
    assert len(table) == (1 if content.startswith(b"[") else 0)
    assert any(r.levelno == logging.ERROR for r in caplog.records)


async def test_bug11_the_daemon_starts_with_a_wrong_typed_timer(
    tmp_path: Path, receiver: Receiver
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "timers.json").write_text('[{"kind": "revert", "key": "fan", "due": "soon"}]')
    async with running(attack_config(tmp_path, free_port(), receiver.url)) as gw:
        assert gw.ready


# ---------------------------------------------------------------------- 12. secrets


def test_bug12_a_secret_in_a_wrong_place_is_never_printed(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("hub_token: the-secret-value-1234567\n")
    config = write_config(
        tmp_path,
        """
        actuators:
          fan: {gpio: 22, kind: relay}
        rules:
          - id: leak
            when: {startup: true}
            then:
              - actuate: !secret hub_token
                state: on
        """,
    )
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert "the-secret-value" not in str(error.value)
    assert "<secret>" in str(error.value)


# ---------------------------------------------------------------------- weaknesses


def test_a_standard_webhooks_secret_that_is_not_base64_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        server:
          hooks:
            hub: {verify: standard-webhooks, secret: whsec_not*base64*at*all!!}
        """,
    )
    with pytest.raises(ConfigError, match="base64"):
        load_config(config)


async def test_without_tokens_a_request_through_an_untrusted_local_proxy_is_refused(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        f"""
        gateway: {{state_dir: {tmp_path / "state"}, simulate: true}}
        server: {{listen: 127.0.0.1:{port}}}
        """,
    )
    async with running(config), aiohttp.ClientSession() as s:
        base = f"http://127.0.0.1:{port}/api/v1/status"
        async with s.get(base) as r:
            assert r.status == 200
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            async with s.get(base, headers={header: "203.0.113.5"}) as r:
                assert r.status == 403, header


def test_ipv6_clients_are_limited_by_their_slash_64() -> None:
    from gateway.api.access import client_key

    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("192.0.2.1") == "192.0.2.1"


def test_a_template_result_type_does_not_depend_on_the_data() -> None:
    from gateway.templates import render

    assert render("{{ v }}", {"v": "True"}) == "True"
    assert render("{{ a }},{{ b }}", {"a": "1e999", "b": 2}) == "1e999,2"
    assert render("{{ v * 2 }}", {"v": 2.5}) == 5.0


async def test_a_damaged_outbox_is_moved_aside_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not an sqlite database" * 100)
    store = OutboxStore(path)
    store.start()
    try:
        store.submit("hub", "after.damage", {})
        await store.flushed()
    finally:
        store.stop()
    assert [p.name for p in os.scandir(tmp_path) if p.name.startswith("outbox.db.damaged-")]
    assert any("damaged" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
