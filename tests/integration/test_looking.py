"""Looking inside a running gateway over HTTP: rules, traces, enable/disable across a
restart, run now, sensor and actuator history, the log level at run time."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp

from gateway.history import recorder as recorder_module
from tests.conftest import free_port, started, write_config

TOKEN, VIEWER = "t" * 32, "v" * 32


def config(tmp_path: Path, port: int, rule_extra: str = "") -> Path:
    return write_config(
        tmp_path,
        f"""
        gateway: {{name: shed, state_dir: {tmp_path / "state"}, simulate: true}}
        sensors:
          freezer: {{kind: virtual}}
          door: {{kind: virtual, type: binary}}
        actuators:
          light: {{gpio: 27}}
        server:
          listen: 127.0.0.1:{port}
          tokens:
            ops: {{token: {TOKEN}}}
            viewer: {{token: {VIEWER}, read_only: true}}
        history: {{resolution: 10s, commit_every: 1s, traces: 5}}
        rules:
          - id: warm
            description: the freezer warms up
            when: {{sensor: freezer, above: -10}}
            if: [{{sensor: door, is: on}}]
            then: [{{actuate: light, state: on}}]{rule_extra}
        """,
    )


async def call(
    port: int, method: str, path: str, body: Any = None, token: str = TOKEN
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method,
            f"http://127.0.0.1:{port}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as r,
    ):
        return r.status, await r.json()


async def test_rules_traces_enable_disable_and_run_now(tmp_path: Path) -> None:
    port = free_port()
    path = config(tmp_path, port)
    async with started(path) as gw:
        assert gw.control is not None
        await gw.control.set_sensor("freezer", -20.0, "test")
        await gw.control.set_sensor("freezer", -5.0, "test")  # the door is not open
        status, rules = await call(port, "GET", "/api/v1/rules")
        assert status == 200
        warm = rules["warm"]
        assert warm["enabled"] is True
        assert warm["last_result"] == "suppressed"
        assert warm["last_why"] == "condition 1 does not hold: door is on (no reading yet)"
        assert warm["last_triggered"] is None
        assert warm["suppressed"] == 1

        status, traces = await call(port, "GET", "/api/v1/rules/warm/traces")
        assert status == 200
        assert traces["traces"][0]["trigger"] == "freezer=-5.0 (test)"
        assert traces["traces"][0]["started"].endswith("Z")

        assert (await call(port, "POST", "/api/v1/rules/warm/run", token=VIEWER))[0] == 403
        status, trace = await call(port, "POST", "/api/v1/rules/warm/run")
        assert status == 200
        assert trace["result"] == "finished"
        assert trace["who"] == "token ops from 127.0.0.1"
        assert trace["steps"][0]["outcome"] == "switched on"
        assert (await call(port, "GET", "/api/v1/actuators/light"))[1]["on"] is True

        status, answer = await call(port, "POST", "/api/v1/rules/warm/disable")
        assert (status, answer) == (200, {"id": "warm", "enabled": False})
        assert (await call(port, "GET", "/api/v1/rules/nothing"))[0] == 404

    async with started(path) as gw:  # a restart: still disabled, traces still there
        assert gw.control is not None
        status, warm = await call(port, "GET", "/api/v1/rules/warm")
        assert warm["enabled"] is False
        assert warm["last_result"] == "finished"
        assert warm["last_triggered"] is not None
        await gw.control.set_sensor("door", True, "test")
        await gw.control.set_sensor("freezer", -20.0, "test")
        await gw.control.set_sensor("freezer", -5.0, "test")
        assert (await call(port, "GET", "/api/v1/rules/warm"))[1]["fired"] == 0  # disabled
        traces = (await call(port, "GET", "/api/v1/rules/warm/traces"))[1]["traces"]
        assert [t["result"] for t in traces] == ["finished", "suppressed"]

    config(tmp_path, port, "\n            cooldown: 1s")  # the rule's config changed
    async with started(path):
        assert (await call(port, "GET", "/api/v1/rules/warm"))[1]["enabled"] is True


async def test_history_of_a_sensor_and_an_actuator(tmp_path: Path) -> None:
    port = free_port()
    recorder_module.PRUNE_EVERY = 0.0  # prune at each commit too (nothing is old enough)
    try:
        async with started(config(tmp_path, port)) as gw:
            assert gw.control is not None
            for value in (-20.0, -18.0, -16.0):
                await gw.control.set_sensor("freezer", value, "test")
            await gw.control.set_sensor("door", True, "test")
            gw.control.switch("light", "on", None, "token ops from 127.0.0.1")
            await gw.recorder.commit()
            status, history = await call(port, "GET", "/api/v1/sensors/freezer/history")
            assert status == 200
            (point,) = history["points"]  # one window of 10 s
            assert point["value"] == -18.0
            assert (point["min"], point["max"]) == (-20.0, -16.0)
            door = (await call(port, "GET", "/api/v1/sensors/door/history"))[1]
            assert [p["value"] for p in door["points"]] == [1.0]
            light = (await call(port, "GET", "/api/v1/actuators/light/history"))[1]
            assert light["switches"][-1]["who"] == "token ops from 127.0.0.1"
            assert light["switches"][-1]["state"] == 1.0
            query = "?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z"
            empty = (await call(port, "GET", "/api/v1/sensors/freezer/history" + query))[1]
            assert empty["points"] == []
            for bad in ("?since=yesterday", "?limit=0", "?since=2&until=1", "?x=1"):
                status, answer = await call(port, "GET", "/api/v1/sensors/freezer/history" + bad)
                assert status == 422, (bad, answer)
            assert (await call(port, "GET", "/api/v1/sensors/nothing/history"))[0] == 404
        assert (tmp_path / "state" / "history.db").exists()
    finally:
        recorder_module.PRUNE_EVERY = 600.0


async def test_the_log_level_changes_at_run_time(tmp_path: Path) -> None:
    port = free_port()
    root = logging.getLogger()
    before = root.level
    try:
        async with started(config(tmp_path, port)):
            body = {"level": "debug"}
            assert (await call(port, "POST", "/api/v1/log-level", body, token=VIEWER))[0] == 403
            assert (await call(port, "POST", "/api/v1/log-level", body))[0] == 200
            assert root.level == logging.DEBUG
            assert (await call(port, "GET", "/api/v1/log-level"))[1]["level"] == "debug"
            status, _ = await call(port, "POST", "/api/v1/log-level", {"level": "loud"})
            assert status == 422
            status, _ = await call(
                port, "POST", "/api/v1/log-level", {"level": "info", "logger": "asyncio"}
            )
            assert status == 404
    finally:
        root.setLevel(before)


async def test_traces_and_switched_rules_are_kept_across_a_reload(tmp_path: Path) -> None:
    port = free_port()
    path = config(tmp_path, port)
    async with started(path) as gw:
        assert gw.control is not None
        await call(port, "POST", "/api/v1/rules/warm/run")
        await call(port, "POST", "/api/v1/rules/warm/disable")
        text = path.read_text().replace(
            "freezer: {kind: virtual}", "freezer: {kind: virtual}\n  attic: {kind: virtual}"
        )
        path.write_text(text)
        gw.reload()
        assert "attic" in gw.control.config.sensors  # the new config is in
        status, warm = await call(port, "GET", "/api/v1/rules/warm")
        assert status == 200
        assert warm["enabled"] is False
        assert warm["last_result"] == "finished"
        assert warm["last_triggered"] is not None
        assert len((await call(port, "GET", "/api/v1/rules/warm/traces"))[1]["traces"]) == 1
