"""Every operation of the OpenAPI document, with every answer it documents.

One table of requests drives a running gateway over real HTTP. Each row
names the documented operation it exercises and the status it must get;
the answer must match the document's schema for that status. A last test
checks the table against the document: every (path, method, status) the
document promises is produced by some row (or, for the few that need a
different gateway, by a named test elsewhere), and every path answers 405
to a method it does not have.

Each row comes from its own client address (``X-Forwarded-For`` through a
trusted proxy), so rate limits and failed-login counts never leak between
rows; ``429`` and ``503`` rows are made for every operation.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import pytest_asyncio

from gateway.api.openapi import openapi_document
from gateway.control import Control
from gateway.outbox import queries
from gateway.signing import sign
from tests.conftest import SECRET, TOKEN, demo_like_config, edited, free_port, running

VIEWER = "viewer-token-0123456789"
FAN_ONLY = "fan-only-token-0123456789"
DOOR = "door-token-0123456789"
GITHUB = "github-secret-0123456789"
RATE = 6  # server.rate_limit.requests
FAILURES = 3  # server.failed_auth.requests
IN_FLIGHT = 4  # server.max_in_flight

SERVER = f"""
  allow: [127.0.0.0/8, 10.0.0.0/8]
  trusted_proxies: [127.0.0.1]
  rate_limit: {{requests: {RATE}, per: 1m}}
  failed_auth: {{requests: {FAILURES}, per: 1m}}
  max_in_flight: {IN_FLIGHT}
  hooks:
    hub: {{verify: standard-webhooks, secret: {SECRET}}}
    door:
      verify: token
      token: {DOOR}
      header: X-Door-Token
      schema: {{type: object, required: [door], properties: {{door: {{enum: [front, back]}}}}}}
    ci: {{verify: github, secret: {GITHUB}}}
  tokens:
    viewer: {{token: {VIEWER}, read_only: true}}
    fan_only: {{token: {FAN_ONLY}, actuators: [fan]}}
"""

ELSEWHERE = {
    ("/api/v1/sensors/{id}", "post", "409"): "test_api.py::test_a_real_device_cannot_be_set",
    ("/api/v1/events", "get", "200"): (
        "test_stream.py::test_the_stream_carries_sensors_switches_traces_webhooks_and_warnings"
    ),  # a stream does not end: read there, event by event
    (
        "/api/v1/events",
        "get",
        "503",
    ): "test_stream.py::test_the_number_of_stream_clients_is_bounded",
    **{
        (path, "post", "408"): "test_attacks.py::test_a_body_that_trickles_is_408_in_time"
        for path in [
            "/api/v1/sensors/{id}",
            "/api/v1/actuators/{id}",
            "/hooks/hub",
            "/hooks/door",
            "/hooks/ci",
            "/hooks/{name}",
        ]
    },
}
"""Documented answers that need another gateway than this file's."""

_clients = itertools.count(1)


def new_client() -> str:
    n = next(_clients)
    return f"10.{n // 250 % 250}.{n % 250}.7"


@dataclass
class Row:
    """One request and the status it must get."""

    op: tuple[str, str]  # (documented path, method)
    status: int
    url: str | None = None  # the concrete path; default: op's path
    token: str | None = TOKEN
    body: bytes | None = None
    content_type: str | None = "application/json"
    headers: Callable[[bytes], dict[str, str]] = field(default=lambda body: {})
    client: str | None = None  # X-Forwarded-For; default: a new address
    before: int = 0  # send the same request this many times first (rate limits)
    why: str = ""

    @property
    def id(self) -> str:
        return f"{self.op[1].upper()} {self.op[0]} {self.status} {self.why}".strip()


def signed(msg_id: str = "", secret: str = SECRET) -> Callable[[bytes], dict[str, str]]:
    def headers(body: bytes) -> dict[str, str]:
        nonce = msg_id or f"msg_{time.time_ns()}"
        stamp = int(time.time())
        return {
            "webhook-id": nonce,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, nonce, stamp, body),
        }

    return headers


def github(delivery: str = "", secret: str = GITHUB) -> Callable[[bytes], dict[str, str]]:
    def headers(body: bytes) -> dict[str, str]:
        mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {
            "X-Hub-Signature-256": f"sha256={mac}",
            "X-GitHub-Delivery": delivery or f"d-{time.time_ns()}",
        }

    return headers


def door(token: str = DOOR, msg_id: str = "") -> Callable[[bytes], dict[str, str]]:
    return lambda body: {"X-Door-Token": token} | ({"webhook-id": msg_id} if msg_id else {})


GET, POST = "get", "post"
BIG = b'{"pad": "' + b"x" * 70_000 + b'"}'
MOTION = b'{"value": "on"}'
LIGHT_ON = b'{"state": "on", "for": "10s"}'


def rows_for_reads() -> list[Row]:
    """The GET operations: success, missing/wrong token, unknown ids, outside the allowlist."""
    rows = []
    for path in [
        "/metrics",
        "/api/v1/status",
        "/api/v1/sensors",
        "/api/v1/actuators",
        "/api/v1/outbox",
        "/api/v1/outbox/messages",
        "/api/v1/openapi.json",
    ]:
        rows += [
            Row((path, GET), 200),
            Row((path, GET), 200, token=VIEWER, why="read-only token"),
            Row((path, GET), 401, token=None, why="no token"),
            Row((path, GET), 401, token="wrong-token-0123456789", why="wrong token"),
            Row((path, GET), 403, client="203.0.113.9", why="outside server.allow"),
        ]
    for path, good, missing in [
        ("/api/v1/sensors/{id}", "hallway_motion", "basement"),
        ("/api/v1/actuators/{id}", "hallway_light", "garage_door"),
        ("/api/v1/outbox/{id}", "{msg}", "msg_nope"),
    ]:
        rows += [
            Row((path, GET), 200, url=path.replace("{id}", good)),
            Row((path, GET), 401, url=path.replace("{id}", good), token=None),
            Row((path, GET), 403, url=path.replace("{id}", good), client="203.0.113.9"),
            Row((path, GET), 404, url=path.replace("{id}", missing)),
        ]
    rows += [
        Row(("/healthz", GET), 200, token=None),
        Row(("/healthz", GET), 403, token=None, client="203.0.113.9"),
        Row(("/readyz", GET), 200, token=None),
        Row(("/readyz", GET), 403, token=None, client="203.0.113.9"),
        Row(
            ("/api/v1/outbox/messages", GET),
            200,
            url="/api/v1/outbox/messages?state=pending&endpoint=home_hub&limit=5",
            why="filtered",
        ),
        Row(
            ("/api/v1/outbox/messages", GET),
            422,
            url="/api/v1/outbox/messages?limit=0",
            why="limit",
        ),
        Row(
            ("/api/v1/outbox/messages", GET),
            422,
            url="/api/v1/outbox/messages?state=lost",
            why="state",
        ),
    ]
    return rows


def rows_for_writes() -> list[Row]:
    sensor, actuator = "/api/v1/sensors/{id}", "/api/v1/actuators/{id}"
    motion, light = "/api/v1/sensors/hallway_motion", "/api/v1/actuators/hallway_light"
    retry, enable = "/api/v1/outbox/{id}/retry", "/api/v1/outbox/endpoints/{name}/enable"
    rows = []
    for op, url, body in [((sensor, POST), motion, MOTION), ((actuator, POST), light, LIGHT_ON)]:
        rows += [
            Row(op, 200, url=url, body=body),
            Row(op, 400, url=url, body=b"{state: on", why="malformed JSON"),
            Row(op, 401, url=url, body=body, token=None, why="no token"),
            Row(op, 403, url=url, body=body, token=VIEWER, why="read-only token"),
            Row(op, 403, url=url, body=body, client="203.0.113.9", why="outside server.allow"),
            Row(op, 404, url=url.replace("hallway_", "attic_"), body=body),
            Row(op, 413, url=url, body=BIG),
            Row(op, 415, url=url, body=b"state=on", content_type="text/plain"),
            Row(op, 422, url=url, body=b'{"state": "maybe", "value": [1]}'),
            Row(op, 422, url=url, body=b"[1, 2]", why="not an object"),
        ]
    rows += [
        Row((sensor, POST), 200, url="/api/v1/sensors/freezer_temp", body=b'{"value": -8.5}'),
        Row((sensor, POST), 422, url="/api/v1/sensors/freezer_temp", body=b'{"value": "warm"}'),
        Row((actuator, POST), 403, url=light, body=LIGHT_ON, token=FAN_ONLY, why="other actuator"),
        Row((sensor, POST), 403, url=motion, body=MOTION, token=FAN_ONLY, why="no sensor scope"),
        Row((retry, POST), 403, url="/api/v1/outbox/{msg}/retry", token=FAN_ONLY, why="scope"),
        Row((actuator, POST), 200, url="/api/v1/actuators/fan", body=b'{"state": "toggle"}'),
        Row((actuator, POST), 422, url=light, body=b'{"state": "on", "for": "400d"}', why="for"),
        Row((retry, POST), 200, url="/api/v1/outbox/{msg}/retry"),
        Row((retry, POST), 401, url="/api/v1/outbox/{msg}/retry", token=None),
        Row((retry, POST), 403, url="/api/v1/outbox/{msg}/retry", token=VIEWER),
        Row((retry, POST), 404, url="/api/v1/outbox/msg_nope/retry"),
        Row((enable, POST), 200, url="/api/v1/outbox/endpoints/home_hub/enable"),
        Row((enable, POST), 401, url="/api/v1/outbox/endpoints/home_hub/enable", token=None),
        Row((enable, POST), 403, url="/api/v1/outbox/endpoints/home_hub/enable", token=VIEWER),
        Row((enable, POST), 404, url="/api/v1/outbox/endpoints/nowhere/enable"),
    ]
    return rows


LOG_LEVEL = b'{"level": "info", "logger": "gateway.api.looking"}'


def rows_for_looking() -> list[Row]:
    """Rules, traces, history, the log level and the event stream."""
    rule, traces = "/api/v1/rules/{id}", "/api/v1/rules/{id}/traces"
    good = "hallway_motion_light"
    rows = []
    for op, url, missing in [
        (("/api/v1/rules", GET), None, None),
        ((rule, GET), rule.replace("{id}", good), rule.replace("{id}", "nothing")),
        ((traces, GET), traces.replace("{id}", good), traces.replace("{id}", "nothing")),
        (("/api/v1/log-level", GET), None, None),
    ]:
        rows += [
            Row(op, 200, url=url),
            Row(op, 200, url=url, token=VIEWER, why="read-only token"),
            Row(op, 401, url=url, token=None, why="no token"),
            Row(op, 403, url=url, client="203.0.113.9", why="outside server.allow"),
        ]
        if missing:
            rows.append(Row(op, 404, url=missing))
    for what, good_id, missing in (
        ("sensors", "freezer_temp", "basement"),
        ("actuators", "fan", "attic"),
    ):
        op = (f"/api/v1/{what}/{{id}}/history", GET)
        url = op[0].replace("{id}", good_id)
        rows += [
            Row(op, 200, url=url),
            Row(op, 200, url=url + "?since=2026-01-01T00:00:00Z&limit=10", why="window"),
            Row(op, 401, url=url, token=None),
            Row(op, 403, url=url, client="203.0.113.9"),
            Row(op, 404, url=op[0].replace("{id}", missing)),
            Row(op, 422, url=url + "?since=soon", why="since"),
            Row(op, 422, url=url + "?limit=0", why="limit"),
        ]
    for action in ("run", "disable", "enable"):  # enable last: the rule stays enabled
        op = (f"/api/v1/rules/{{id}}/{action}", POST)
        url = op[0].replace("{id}", good)
        rows += [
            Row(op, 200, url=url),
            Row(op, 401, url=url, token=None),
            Row(op, 403, url=url, token=VIEWER, why="read-only token"),
            Row(op, 403, url=url, token=FAN_ONLY, why="a token limited to a device"),
            Row(op, 403, url=url, client="203.0.113.9"),
            Row(op, 404, url=op[0].replace("{id}", "nothing")),
        ]
    level = ("/api/v1/log-level", POST)
    rows += [
        Row(level, 200, body=LOG_LEVEL),
        Row(level, 400, body=b"{level", why="malformed JSON"),
        Row(level, 401, body=LOG_LEVEL, token=None),
        Row(level, 403, body=LOG_LEVEL, token=VIEWER, why="read-only token"),
        Row(level, 403, body=LOG_LEVEL, client="203.0.113.9"),
        Row(level, 404, body=b'{"level": "info", "logger": "asyncio"}', why="not ours"),
        Row(level, 413, body=BIG),
        Row(level, 415, body=b"level=info", content_type="text/plain"),
        Row(level, 422, body=b'{"level": "loud"}'),
        Row(("/api/v1/events", GET), 401, token=None),
        Row(("/api/v1/events", GET), 401, token="wrong-token-0123456789", why="wrong token"),
        Row(("/api/v1/events", GET), 403, client="203.0.113.9"),
    ]
    return rows


def rows_for_hooks() -> list[Row]:
    body = b'{"door": "front"}'
    rows = []
    for path, good, bad in [
        ("/hooks/hub", signed, signed(secret="whsec_" + "WllaWllaWllaWllaWllaWllaWllaWlla")),
        ("/hooks/door", door, door("wrong-door-token-0123")),
        ("/hooks/ci", github, github(secret="wrong-github-secret-0")),
    ]:
        op = (path, POST)
        rows += [
            Row(op, 202, body=body, token=None, headers=good()),
            Row(op, 401, body=body, token=None, headers=bad, why="wrong signature"),
            Row(op, 401, body=body, token=None, why="no signature"),
            Row(op, 400, body=b"{door", token=None, headers=good(), why="malformed JSON"),
            Row(op, 413, body=BIG, token=None, headers=good()),
            Row(op, 415, body=body, token=None, headers=good(), content_type="text/plain"),
            Row(op, 403, body=body, token=None, headers=good(), client="203.0.113.9"),
        ]
    rows += [  # before=1: the same delivery is sent twice
        Row(("/hooks/hub", POST), 200, body=body, token=None, headers=signed("msg_hub2"), before=1, why="duplicate"),
        Row(("/hooks/ci", POST), 200, body=body, token=None, headers=github("d-ci2"), before=1, why="duplicate"),
        Row(("/hooks/door", POST), 200, body=body, token=None, headers=door(msg_id="m-door2"), before=1, why="duplicate"),
        Row(("/hooks/door", POST), 422, body=b'{"door": "side"}', token=None, headers=door(), why="schema"),
        Row(("/hooks/door", POST), 422, body=b"[]", token=None, headers=door(), why="schema: object"),
        Row(("/hooks/{name}", POST), 202, url="/hooks/hub", body=body, token=None, headers=signed()),
        Row(("/hooks/{name}", POST), 200, url="/hooks/hub", body=body, token=None, headers=signed("msg_any2"), before=1, why="duplicate"),
        Row(("/hooks/{name}", POST), 400, url="/hooks/hub", body=b"{", token=None, headers=signed()),
        Row(("/hooks/{name}", POST), 401, url="/hooks/hub", body=body, token=None),
        Row(("/hooks/{name}", POST), 403, url="/hooks/hub", body=body, token=None, client="203.0.113.9"),
        Row(("/hooks/{name}", POST), 404, url="/hooks/nobody", body=body, token=None, headers=signed()),
        Row(("/hooks/{name}", POST), 413, url="/hooks/hub", body=BIG, token=None, headers=signed()),
        Row(("/hooks/{name}", POST), 415, url="/hooks/hub", body=body, token=None, headers=signed(), content_type="text/plain"),
        Row(("/hooks/{name}", POST), 422, url="/hooks/door", body=b"{}", token=None, headers=door()),
    ]  # fmt: skip
    return rows


def rows_for_limits() -> list[Row]:
    """429 and 503 for every operation: from each operation's first successful row."""
    first: dict[tuple[str, str], Row] = {}
    for row in rows_for_reads() + rows_for_writes() + rows_for_looking() + rows_for_hooks():
        if row.status in (200, 202) and row.op not in first:
            first[row.op] = row
    stream = Row(("/api/v1/events", GET), 200)  # never read here: these fail before it opens
    first[stream.op] = stream
    rows = []
    for op, ok in first.items():
        if op[0] != "/healthz":  # a liveness probe is never rate limited
            rows.append(Row(**{**ok.__dict__, "status": 429, "before": RATE, "why": "rate"}))
        if ok.op[0] != "/api/v1/events":  # a stream holds no slot: bounded by its own count
            rows.append(Row(**{**ok.__dict__, "status": 503, "why": "in flight"}))
        if ok.token is not None or ok.op[0].startswith("/hooks"):
            rows.append(
                Row(**{**ok.__dict__, "status": 429, "before": -FAILURES, "why": "failed logins"})
            )
    return rows


ROWS = (
    rows_for_reads() + rows_for_writes() + rows_for_looking() + rows_for_hooks() + rows_for_limits()
)


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("matrix")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(module_tmp: Path) -> AsyncIterator[tuple[str, Control, str]]:
    port = free_port()
    config = demo_like_config(module_tmp, port, "http://127.0.0.1:9/")
    text = edited(
        config.read_text(),
        ("  tokens:\n", SERVER),
        ("sensors:\n", "sensors:\n  freezer_temp: {kind: virtual}\n"),
        ("actuators:\n", "actuators:\n  fan: {gpio: 22}\n"),
    )
    config.write_text(text)
    base = f"http://127.0.0.1:{port}"
    async with running(config) as gw:
        # one queued webhook (nothing listens on :9), whose id the outbox rows use
        async with aiohttp.ClientSession() as s:
            headers = {
                "Authorization": f"Bearer {TOKEN}",
                "X-Forwarded-For": new_client(),
                "Content-Type": "application/json",
            }
            url = base + "/api/v1/sensors/hallway_motion"
            async with s.post(url, data=MOTION, headers=headers) as r:
                assert r.status == 200, await r.text()
        [message] = await gw.outbox.store.call(lambda db: queries.list_messages(db))
        errors = Errors()
        logging.getLogger("gateway").addHandler(errors)
        try:
            yield base, gw, message["id"]
        finally:
            logging.getLogger("gateway").removeHandler(errors)
    assert errors.records == []  # no request, however bad, was a bug of ours


class Errors(logging.Handler):
    """Collects the gateway's ERROR log records (a 500 logs one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


async def stall(base: str, count: int, authenticated: bool) -> list[asyncio.StreamWriter]:
    """``count`` requests that hold a slot in flight: headers sent, body never.

    Authenticated API calls and the rest (hooks) have separate slots, so the
    stalled requests are of the same kind as the row's.
    """
    port = int(base.rsplit(":", 1)[1])
    request = b"POST /hooks/door HTTP/1.1\r\n"
    if authenticated:
        request = (
            b"POST /api/v1/sensors/hallway_motion HTTP/1.1\r\n"
            + f"Authorization: Bearer {TOKEN}\r\n".encode()
        )
    writers = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            request
            + b"Host: x\r\nContent-Type: application/json\r\n"
            + f"X-Forwarded-For: {new_client()}\r\n".encode()
            + b"Content-Length: 100\r\n\r\n"
        )
        await writer.drain()
        writers.append(writer)
    await asyncio.sleep(0.1)
    return writers


async def send(s: aiohttp.ClientSession, base: str, row: Row, msg: str, client: str) -> Any:
    url = (row.url or row.op[0]).replace("{msg}", msg)
    body = row.body or b""
    headers = {"X-Forwarded-For": client, **row.headers(body)}
    if row.token:
        headers["Authorization"] = f"Bearer {row.token}"
    if row.content_type and row.body is not None:
        headers["Content-Type"] = row.content_type
    return s.request(row.op[1].upper(), base + url, data=body or None, headers=headers)


def wrong_credentials(i: int, body: bytes) -> dict[str, str]:
    """The i-th of several different wrong hook credentials."""
    return {
        "X-Door-Token": f"wrong-{i}",
        "webhook-signature": f"v1,wrong{i}",
        "X-Hub-Signature-256": f"sha256=wrong{i}",
    }


def check_documented(doc: dict[str, Any], row: Row, status: int, answer: Any) -> None:
    """The answer matches the document's schema for this operation and status."""
    op = doc["paths"][row.op[0]][row.op[1]]
    assert str(status) in op["responses"], f"{row.id}: {status} is not documented"
    content = op["responses"][str(status)]["content"]
    if "application/json" not in content:
        return
    schema = {**content["application/json"]["schema"], "components": doc["components"]}
    jsonschema.validate(answer, schema)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
async def test_each_documented_answer(api: tuple[str, Control, str], row: Row) -> None:
    base, gw, msg = api
    doc = openapi_document(gw.config)
    client = row.client or new_client()
    authenticated = row.op[0].startswith(("/api/v1", "/metrics"))
    writers = await stall(base, IN_FLIGHT, authenticated) if row.status == 503 else []
    try:
        async with aiohttp.ClientSession() as s:
            for i in range(abs(row.before)):
                # different wrong credentials, as someone guessing sends them
                spoiled = Row(**{**row.__dict__, "token": f"wrong-token-{i}-0123456789"})
                bad = row.before < 0
                if bad and row.op[0].startswith("/hooks"):
                    spoiled.headers = partial(wrong_credentials, i)
                async with await send(s, base, spoiled if bad else row, msg, client) as r:
                    assert r.status != 500
            async with await send(s, base, row, msg, client) as r:
                status, ctype, headers = r.status, r.content_type, r.headers
                answer = await r.json() if ctype == "application/json" else await r.text()
    finally:
        for writer in writers:
            writer.close()
    assert status == row.status, f"{row.id}: got {status} {answer}"
    check_documented(doc, row, status, answer)
    if status >= 400:
        assert answer["error"]["message"], answer
    if status in (429, 503):
        assert int(headers["Retry-After"]) >= 1
    if status == 401 and row.op[0].startswith(("/api", "/metrics")):
        assert headers["WWW-Authenticate"].startswith("Bearer")


async def test_every_path_answers_405_to_other_methods(api: tuple[str, Control, str]) -> None:
    base, gw, msg = api
    doc = openapi_document(gw.config)
    async with aiohttp.ClientSession() as s:
        for path, ops in doc["paths"].items():
            url = path.replace("{id}", msg).replace("{name}", "home_hub")
            method = "DELETE" if "delete" not in ops else "PATCH"
            headers = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": new_client()}
            async with s.request(method, base + url, headers=headers) as r:
                assert r.status == 405, path
                answer = await r.json()
                assert answer["error"]["code"] == "method_not_allowed"
                assert {m.lower() for m in r.headers["Allow"].split(",")} >= set(ops), path


async def test_the_table_covers_every_documented_answer(api: tuple[str, Control, str]) -> None:
    doc = openapi_document(api[1].config)
    documented = {
        (path, method, code)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        for code in op["responses"]
    }
    covered = {(row.op[0], row.op[1], str(row.status)) for row in ROWS}
    assert documented - covered - set(ELSEWHERE) == set()
    for where in ELSEWHERE.values():
        file, test = where.split("::")
        assert f"def {test}(" in (Path(__file__).parent / file).read_text()
    assert covered - documented == set()  # and no row expects an undocumented answer
