"""The new ways in survive any bytes: damaged history.db, rules.json and session.key,
random session cookies, CSRF headers and history queries. Each gets a clear answer
or a logged line, and the gateway keeps running."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import aiohttp
import pytest

from gateway.api.auth import Client, TokenTable
from gateway.api.session import Sessions
from gateway.config.server import TokenConfig
from gateway.config.storage import HistorySection
from gateway.history.recorder import Recorder
from gateway.rules.overrides import RuleOverrides
from tests.conftest import free_port, started, write_config

TOKEN = "t" * 32


def config(tmp_path: Path, port: int) -> Path:
    return write_config(
        tmp_path,
        f"""
        gateway: {{name: shed, state_dir: {tmp_path / "state"}, simulate: true}}
        sensors:
          freezer: {{kind: virtual}}
        actuators:
          light: {{gpio: 27}}
        server:
          listen: 127.0.0.1:{port}
          rate_limit: {{requests: 100000, per: 1m}}
          failed_auth: {{requests: 100000, per: 1m}}
          tokens:
            ops: {{token: {TOKEN}}}
        rules:
          - id: warm
            when: {{sensor: freezer, above: -10}}
            then: [{{actuate: light, state: on}}]
        """,
    )


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00" * 4096,
        b"SQLite format 3\x00" + b"\xff" * 4000,
        random.Random(1).randbytes(9000),
    ],
)
async def test_a_damaged_history_file_is_logged_and_the_gateway_runs(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "history.db").write_bytes(content)
    (state / "rules.json").write_bytes(b"\xff\xfe{not json")
    (state / "session.key").write_bytes(b"short")
    port = free_port()
    with caplog.at_level(logging.WARNING):
        async with started(config(tmp_path, port)) as gw:
            assert gw.control is not None
            await gw.control.set_sensor("freezer", -20.0, "test")
            await gw.control.set_sensor("freezer", -5.0, "test")
            await gw.recorder.commit()
            assert gw.control.rules.get("warm")["last_result"] == "finished"
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession(headers=headers) as s:
                url = f"http://127.0.0.1:{port}/api/v1/sensors/freezer/history"
                async with s.get(url) as r:
                    assert r.status == 200
    assert "ignoring" in caplog.text  # rules.json
    if content and not content.startswith(b"\x00"):
        assert "history" in caplog.text


def test_a_recorder_that_cannot_open_its_file_keeps_traces_in_memory(tmp_path: Path) -> None:
    (tmp_path / "history.db").mkdir()  # a directory where the file should be
    recorder = Recorder(tmp_path / "history.db", HistorySection(), ["r"])
    assert recorder.store is None
    assert recorder.rule_traces("r") == []


def test_rules_json_of_any_shape_is_ignored(tmp_path: Path) -> None:
    for content in (b"[]", b"null", b'{"warm": 5}', b'{"warm": {"enabled": "yes"}}', b"1e999"):
        path = tmp_path / "rules.json"
        path.write_bytes(content)
        from gateway.config.models import GatewayConfig

        rules = GatewayConfig.model_validate(
            {"rules": [{"id": "warm", "when": {"startup": True}, "then": [{"log": "x"}]}]}
        ).rules
        assert RuleOverrides(path).disabled(rules) == set()


def test_random_cookies_and_csrf_headers_are_never_a_session(tmp_path: Path) -> None:
    tokens = TokenTable({"ops": TokenConfig.model_validate({"token": TOKEN})})
    sessions = Sessions(tokens, tmp_path / "session.key")
    good = sessions.open(Client.everything("ops"), TOKEN)
    assert sessions.client(good) is not None
    rng = random.Random(7)
    for _ in range(2000):
        raw = rng.randbytes(rng.randrange(0, 300)).decode("latin-1")
        assert sessions.client(raw) is None
        mutated = list(good)
        mutated[rng.randrange(len(mutated))] = rng.choice("abcXYZ019._-")
        candidate = "".join(mutated)
        if candidate != good:
            assert sessions.client(candidate) is None
        assert not sessions.csrf_ok(good, raw)
    assert sessions.client(good, now=10**12) is None  # expired
    tokens.replace({"ops": TokenConfig.model_validate({"token": "u" * 32})})
    assert sessions.client(good) is None  # the token changed: its sessions end
    again = Sessions(tokens, tmp_path / "session.key")  # the key survives a restart
    assert again.csrf(good) == sessions.csrf(good)


async def test_random_history_queries_and_cookies_over_http(tmp_path: Path) -> None:
    port = free_port()
    rng = random.Random(3)
    async with started(config(tmp_path, port)), aiohttp.ClientSession() as s:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(200):
            junk = "".join(rng.choice("0123456789-:TZ.+e%&=?sinceultmx ") for _ in range(30))
            url = f"{base}/api/v1/sensors/freezer/history?since={junk}"
            async with s.get(url, headers=headers) as r:
                assert r.status in (200, 400, 422), (junk, r.status)
            cookie = rng.randbytes(40).hex()
            async with s.post(
                f"{base}/api/v1/actuators/light",
                json={"state": "on"},
                headers={"Cookie": f"gateway_session={cookie}", "X-CSRF-Token": cookie},
            ) as r:
                assert r.status == 401
        async with s.get(f"{base}/api/v1/actuators/light", headers=headers) as r:
            assert (await r.json())["on"] is False
