"""Property-based fuzzing of the HTTP API: whatever arrives, the answer is never a 5xx."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import Gateway
from gateway.config import load_config
from tests.conftest import TOKEN, demo_like_config, free_port

PATHS = [
    "/api/v1/sensors/{}",
    "/api/v1/actuators/{}",
    "/api/v1/outbox/{}/retry",
    "/api/v1/outbox/endpoints/{}/enable",
    "/hooks/{}",
    "/api/v1/status",
    "/api/v1/sensors",
    "/api/v1/actuators",
    "/api/v1/outbox",
    "/metrics",
    "/healthz",
    "/readyz",
    "/api/v1/openapi.json",
]
NAMES = st.sampled_from(
    ["hallway_light", "hallway_motion", "freezer", "hub", "x" * 300, "%00", "..", "ö", "msg_1"]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
BODIES = st.one_of(
    JSON.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "state": st.sampled_from(["on", "off", "toggle", "x", 1, None]),
            "for": st.sampled_from(["1s", "-1s", "soon", 5, None]),
        }
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"value": JSON}).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
RAW_HEADER_TEXT = st.text(  # sent as latin-1: any byte but control characters
    alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"),
    max_size=60,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    config = demo_like_config(tmp, port, "http://127.0.0.1:9/")
    text = (
        config.read_text()
        .replace(
            "  tokens:\n",
            "  rate_limit: {requests: 100000, per: 1s}\n"
            "  failed_auth: {requests: 100000, per: 1s}\n"
            "  hooks:\n    hub: {verify: standard-webhooks, secret: "
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n  tokens:\n",
        )
        .replace("sensors:\n", "sensors:\n  freezer: {kind: virtual}\n")
    )
    config.write_text(text)
    gateway = Gateway(load_config(config), simulate=True)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(gateway.run(handle_signals=False),), daemon=True
    )
    thread.start()
    for _ in range(500):
        if gateway.control is not None and gateway.control.ready:
            break
        threading.Event().wait(0.01)
    yield port
    loop.call_soon_threadsafe(gateway.stop)
    thread.join(10)


def request(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    template=st.sampled_from(PATHS),
    name=NAMES,
    body=BODIES,
    content_type=st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/vnd.api+json",
            "",
            "multipart/form-data",
        ]
    ),
)
def test_no_request_gets_a_5xx(
    server: int, method: str, template: str, name: str, body: bytes, content_type: str
) -> None:
    from urllib.parse import quote

    path = template.format(quote(name, safe=""))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    status = request(server, method, path, body, headers)
    assert status < 500, (method, path, body, content_type)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "Authorization",
                "X-Hub-Signature-256",
                "X-Forwarded-For",
            ]
        ),
        RAW_HEADER_TEXT,
    ),
    body=BODIES,
)
def test_any_malformed_auth_header_is_a_401(
    server: int, headers: dict[str, str], body: bytes
) -> None:
    for path in ("/hooks/hub", "/api/v1/status"):
        status = request(
            server, "POST" if path.startswith("/hooks") else "GET", path, body, headers
        )
        assert status == 401, (path, headers)
