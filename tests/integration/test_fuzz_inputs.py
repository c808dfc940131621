"""Property-based fuzzing of every input path other than well-formed HTTP.

Raw bytes through a socket (what no client library sends), hook payloads,
MQTT payloads, serial lines of every format, config files, ``timers.json``
and the outbox database. The invariants: no exception escapes, no 5xx, no
traceback logged at ERROR, and every body the gateway stores is strict JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import safejson
from gateway.app import Gateway
from gateway.config import ConfigError, load_config
from gateway.config.connections import MqttSection, MqttSensor, SerialPort
from gateway.config.models import GatewayConfig
from gateway.errors import OutboxError
from gateway.events import Value
from gateway.hub.hub import Hub
from gateway.inputs.mqtt import MqttLink
from gateway.inputs.serial import SerialInput
from gateway.outbox import http11
from gateway.outbox.store import OutboxStore
from gateway.rules.runtime import Runtime
from gateway.rules.timers import TimerTable
from gateway.signing import sign
from gateway.testing import MemoryActuators, RecordingOutbox, VirtualClock
from tests.conftest import SECRET, TOKEN, free_port, write_config

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def strict(raw: bytes) -> Any:
    """Parse as a strict JSON reader would: no NaN, no Infinity."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in an emitted body")

    return json.loads(raw.decode("utf-8"), parse_constant=refuse)


JSON_TEXT = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["\ud800", "1e999", "NaN", "True"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
NASTY_BYTES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 3000 + b"1" + b"}" * 3000,
            b"1e999",
            b"-1e999",
            b"NaN",
            b'"\\ud800"',
            b'{"temp": "\\udfff"}',
            b"\xff\xfe\x00",
            b"9" * 5000,
        ]
    ),
    JSON_TEXT.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
)


# ---------------------------------------------------------------------- webhook answers

HTTP_ANSWERS = st.one_of(
    NASTY_BYTES,
    st.tuples(
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"http/1.1", b""]),
        st.sampled_from([b"200", b"100", b"101", b"204", b"503", b"999", b"20", b"abc", b"2\xb20"]),
        st.lists(
            st.sampled_from(
                [
                    b"Content-Length: 5",
                    b"Content-Length: -1",
                    b"Content-Length: \xb9",
                    b"Content-Length: 99999999999999999999",
                    b"Transfer-Encoding: chunked",
                    b"Connection: close",
                    b"Retry-After: \xff\x00",
                    b" folded: line",
                    b"no-colon",
                ]
            ),
            max_size=4,
        ),
        st.binary(max_size=120),  # the body, chunked or not
    ).map(lambda t: t[0] + b" " + t[1] + b" X\r\n" + b"\r\n".join(t[2]) + b"\r\n\r\n" + t[3]),
)


async def _answer_with(raw: bytes) -> None:
    """One webhook POST to a server that answers ``raw`` and hangs up."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    client = http11.Client("fuzz")
    try:
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(5):  # the server hangs up: every answer ends
            got = await client.request("POST", "127.0.0.1", port, "/", {}, b"{}", 2.0)
        assert 100 <= got.status <= 999
        assert len(got.body) <= http11.KEEP_BODY
    except (http11.AnswerError, ConnectionError):
        pass  # a clear error the delivery logs as "bad answer" and retries
    finally:
        client.close()
        server.close()
        await server.wait_closed()


@FUZZ
@given(raw=HTTP_ANSWERS)
def test_any_webhook_answer_is_an_answer_or_a_clear_error(raw: bytes) -> None:
    asyncio.run(_answer_with(raw))


# ---------------------------------------------------------------------- JSON at the edges


@FUZZ
@given(raw=NASTY_BYTES)
def test_strict_json_raises_only_its_own_error(raw: bytes) -> None:
    try:
        doc = safejson.loads(raw)
    except safejson.JsonError:
        return
    strict(safejson.dumps(doc))


@FUZZ
@given(doc=JSON_TEXT)
def test_every_emitted_body_is_strict_json(doc: Any) -> None:
    body = safejson.dumps({"data": doc})
    strict(body)


# ---------------------------------------------------------------------- MQTT and serial


@FUZZ
@given(topic=st.text(max_size=30), payload=NASTY_BYTES)
def test_any_mqtt_message_is_handled_without_an_exception(topic: str, payload: bytes) -> None:
    readings: list[Any] = []
    sensors = {
        "n": MqttSensor(mqtt="#", kind="number"),
        "b": MqttSensor(mqtt="+/#", kind="binary"),
        "t": MqttSensor(mqtt="#", kind="text"),
        "v": MqttSensor(mqtt="#", kind="number", value="{{ payload.temp * 2 }}"),
    }
    config = MqttSection(host="127.0.0.1", port=1, client_id="fuzz")
    mqtt = MqttLink(config, "f", sensors, ["#"], lambda s, v: readings.append(v), lambda t, p: None)
    mqtt.handle(topic, payload)
    assert all(not isinstance(v, float) or math.isfinite(v) for v in readings)


@given(topic=st.binary(max_size=30), payload=NASTY_BYTES)
def test_any_message_as_paho_reads_it_is_handled_without_an_exception(
    topic: bytes, payload: bytes
) -> None:
    """The link's handler gets paho's message itself: a topic that is not UTF-8 (a
    broker should let none through) is counted, not raised into paho's read."""
    readings: list[Any] = []
    config = MqttSection(host="127.0.0.1", port=1, client_id="fuzz")
    sensors = {"t": MqttSensor(mqtt="#", kind="text")}
    mqtt = MqttLink(config, "f", sensors, ["#"], lambda s, v: readings.append(v), lambda t, p: None)
    message = paho.MQTTMessage(mid=1, topic=topic)
    message.payload = payload
    mqtt._received(None, message)
    try:
        topic.decode("utf-8")
    except UnicodeDecodeError:
        assert (mqtt.malformed, readings) == (1, [])
    assert mqtt.messages == 1


HUB_CONFIG = GatewayConfig.model_validate(
    {
        "gateway": {"name": "f"},
        "mqtt": {"host": "127.0.0.1", "publish_states": True, "commands": True},
        "homeassistant": {"discovery": True},
        "sensors": {
            "room": {"mqtt": "home/+/temp", "kind": "number", "split": True},
            "named": {"mqtt": "x/#", "kind": "text", "name": "{{ topic.split('/')[-1] }}_x"},
        },
        "actuators": {"light": {"gpio": 27, "max_on": "1h"}, "fan": {"gpio": 18, "kind": "pwm"}},
    }
)
HUB_TOPICS = st.one_of(
    st.sampled_from(
        ["gateway/f/light/set", "gateway/f/fan/set", "homeassistant/status", "home/a/temp"]
    ),
    st.builds(lambda t: f"home/{t}/temp", st.text(max_size=80)),
    st.builds(lambda t: f"x/{t}", st.text(max_size=80)),
    st.builds(lambda t: f"homeassistant/switch/f/{t}/config", st.text(max_size=40)),
)


@FUZZ
@given(topic=HUB_TOPICS, payload=NASTY_BYTES)
def test_any_command_discovery_or_split_message_is_a_counted_value_never_a_failure(
    topic: str, payload: bytes
) -> None:
    """Commands, Home Assistant's messages and split members: whatever arrives is a
    command, a counted bad one, or a reading; never an exception (``malformed``)."""
    clock = VirtualClock(1_760_000_000.0)
    recorder = RecordingOutbox(clock)
    hub = Hub(HUB_CONFIG, recorder)
    actuators = MemoryActuators({"light": False, "fan": 0.0}, clock)
    runtime = Runtime(
        HUB_CONFIG, actuators, recorder, TimerTable(None), clock, links=recorder, observers=[hub]
    )
    hub.attach(runtime)
    sensors = {n: s for n, s in HUB_CONFIG.sensors.items() if isinstance(s, MqttSensor)}
    assert HUB_CONFIG.mqtt is not None

    def reading(sensor: str, value: Value) -> None:
        runtime.reading(sensor, value, "mqtt")

    def member(name: str, group: str, value: Value) -> None:
        runtime.reading(name, value, "mqtt", group)

    mqtt = MqttLink(HUB_CONFIG.mqtt, "f", sensors, [], reading, lambda t, p: None, on_member=member)
    mqtt.hub = hub
    mqtt.handle(topic, payload)
    assert mqtt.malformed == 0
    assert len(runtime.members) <= 1
    assert actuators.get("fan") in (0.0, 1.0) or 0.0 <= float(actuators.get("fan")) <= 1.0


@FUZZ
@given(
    line=NASTY_BYTES,
    fmt=st.sampled_from(["json", "kv", "csv", "regex", "raw"]),
)
def test_any_serial_line_is_handled_without_an_exception(line: bytes, fmt: str) -> None:
    extra: dict[str, Any] = {"csv": {"fields": ["a", "b"]}, "regex": {"pattern": r"t=(?P<a>\S+)"}}
    port = SerialPort.model_validate(
        {"port": "/dev/null", "format": fmt, "max_line": 100_000, **extra.get(fmt, {})}
    )
    seen: list[Any] = []
    serial = SerialInput("fuzz", port, {"a": "a", "line": None}, lambda s, v: seen.append(v))
    serial.handle_line(line)
    assert all(not isinstance(v, float) or math.isfinite(v) for v in seen)


# ---------------------------------------------------------------------- files


@FUZZ
@given(content=NASTY_BYTES)
def test_any_timers_file_loads_or_is_skipped(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "timers.json"
    path.write_bytes(content)
    table = TimerTable(path)
    assert all(math.isfinite(t.due) for t in table)


YAML_PIECES = st.sampled_from(
    [
        "sensors:\n",
        "  a: {gpio: 17}\n",
        "  b: {kind: virtual, type: number, initial: .nan}\n",
        "rules:\n",
        "  - id: r\n    when: {sensor: a, to: on}\n    then: [{log: x}]\n",
        "actuators: {l: {gpio: 27}}\n",
        "server: {listen: '127.0.0.1:1'}\n",
        "!include /etc/passwd\n",
        "x: !secret nope\n",
        "&a [*a]\n",
        "{{{{\n",
        "\t- \x00\n",
        "gateway: {name: 1e999}\n",
        "<<: {a: 1}\n",
        "sensors: {a: {gpio: 17}, a: {gpio: 18}}\n",
    ]
)


@FUZZ
@given(pieces=st.lists(YAML_PIECES, max_size=6), junk=st.binary(max_size=40))
def test_any_config_file_loads_or_is_a_config_error(
    tmp_path: Path, pieces: list[str], junk: bytes
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_bytes("".join(pieces).encode() + junk)
    try:
        load_config(path)
    except ConfigError as exc:
        reported = bool(exc.problems)
    else:
        reported = True  # it loaded: fine too
    assert reported


@settings(max_examples=40, deadline=None)
@given(offset=st.integers(min_value=0, max_value=20_000), noise=st.binary(min_size=1, max_size=64))
def test_a_damaged_outbox_database_never_stops_the_start(
    tmp_path_factory: pytest.TempPathFactory, offset: int, noise: bytes
) -> None:
    directory = tmp_path_factory.mktemp("db")
    path = directory / "outbox.db"
    store = OutboxStore(path)
    store.start()
    for i in range(50):
        store.submit("hub", "before", {"i": i, "pad": "x" * 200})
    store.stop()
    data = bytearray(path.read_bytes())
    at = offset % max(len(data), 1)
    data[at : at + len(noise)] = noise
    path.write_bytes(bytes(data[: max(len(data), 1)]))
    store = OutboxStore(path)
    try:
        store.start()
    except OutboxError:
        return  # said so, with the path; the daemon exits with the reason
    try:
        future = store.call_threadsafe(lambda db: db.execute("SELECT 1").fetchone())
        future.result(10)
    except Exception:
        pass  # a damaged page may fail a query: what counts is that the start survived
    finally:
        store.stop()


# ---------------------------------------------------------------------- the daemon, raw


class ErrorTracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Gateway]]:
    tmp: Path = tmp_path_factory.mktemp("raw")
    port = free_port()
    config = write_config(
        tmp,
        f"""
        gateway: {{name: fuzz, state_dir: {tmp / "state"}, simulate: true}}
        sensors:
          note: {{kind: virtual, type: text}}
          level: {{kind: virtual, type: number}}
        webhooks:
          hub_out: {{url: "http://127.0.0.1:9/", secret: {SECRET}}}
        server:
          listen: 127.0.0.1:{port}
          body_timeout: 1s
          rate_limit: {{requests: 100000, per: 1s}}
          failed_auth: {{requests: 100000, per: 1s}}
          tokens: {{tester: {{token: {TOKEN}}}}}
          hooks:
            hub: {{verify: standard-webhooks, secret: {SECRET}}}
        rules:
          - id: hook_out
            when: {{hook: hub}}
            then:
              - webhook: hub_out
                event: hook.in
                data: {{payload: "{{{{ event.payload }}}}", q: "{{{{ event.query }}}}"}}
          - id: note_out
            when: {{sensor: note}}
            then: [{{webhook: hub_out, event: note.changed, data: {{v: "{{{{ event.value }}}}"}}}}]
        """,
    )
    gateway = Gateway(load_config(config), simulate=True)
    tracebacks = ErrorTracebacks()
    logging.getLogger().addHandler(tracebacks)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(gateway.run(handle_signals=False),), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 5
    while (gateway.control is None or not gateway.control.ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield port, gateway
    loop.call_soon_threadsafe(gateway.stop)
    thread.join(10)
    logging.getLogger().removeHandler(tracebacks)
    assert not tracebacks.records, [r.getMessage() for r in tracebacks.records]
    state = tmp / "state"
    import sqlite3

    for (body,) in sqlite3.connect(state / "outbox.db").execute("SELECT body FROM messages"):
        strict(body)


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)  # "Connection: close": the server closes after its answer
        chunks = []
        try:
            while chunk := s.recv(4096):
                chunks.append(chunk)
        except OSError:
            pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1."):
        return None  # closed without an answer
    return int(answer.split(b" ", 2)[1])


HEADER_BYTES = st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b)


@FUZZ
@given(
    path=st.sampled_from(
        [b"/hooks/hub", b"/api/v1/sensors/note", b"/api/v1/status", b"/metrics", b"/"]
    ),
    name=st.sampled_from(
        [
            b"webhook-id",
            b"webhook-timestamp",
            b"webhook-signature",
            b"Authorization",
            b"Content-Type",
            b"Content-Length",
            b"X-Forwarded-For",
            b"Transfer-Encoding",
        ]
    ),
    value=HEADER_BYTES,
    body=NASTY_BYTES,
)
def test_raw_bytes_in_any_header_are_never_a_5xx(
    daemon: tuple[int, Gateway], path: bytes, name: bytes, value: bytes, body: bytes
) -> None:
    port, _ = daemon
    request = (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Type: application/json\r\n" + name + b": " + value + b"\r\n"
    )
    if name != b"Content-Length":
        request += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    status = status_of(exchange(port, request + b"\r\n" + body))
    assert status is None or status < 500, (path, name, value)


@FUZZ
@given(body=NASTY_BYTES, query=st.text(max_size=20))
def test_any_signed_hook_payload_is_never_a_5xx(
    daemon: tuple[int, Gateway], body: bytes, query: str
) -> None:
    port, _ = daemon
    msg_id = f"fuzz-{time.monotonic_ns()}"
    stamp = int(time.time())
    from urllib.parse import quote

    request = (
        f"POST /hooks/hub?q={quote(query)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nwebhook-id: {msg_id}\r\n"
        f"webhook-timestamp: {stamp}\r\n"
        f"webhook-signature: {sign(SECRET, msg_id, stamp, body)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    status = status_of(exchange(port, request))
    assert status in (202, 400, 413, 422), status


@FUZZ
@given(value=JSON_TEXT)
def test_any_sensor_value_is_never_a_5xx(daemon: tuple[int, Gateway], value: Any) -> None:
    port, _ = daemon
    for sensor in ("note", "level"):
        body = json.dumps({"value": value}).encode("utf-8", "surrogatepass")
        request = (
            f"POST /api/v1/sensors/{sensor} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        status = status_of(exchange(port, request))
        assert status in (200, 400, 422), (sensor, value, status)
