"""``gateway watch``, ``gateway trace`` and ``gateway log-level`` against the daemon."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Daemon, Receiver, demo_like_config, free_port


def gateway(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_watch_trace_and_log_level_from_the_command_line(
    tmp_path: Path, receiver: Receiver, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, receiver.url)
    daemon = daemon_factory(config, port)
    daemon.start("--simulate")
    await daemon.wait_ready()

    watch = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway", "watch", "--json", "--config", str(config)),
        stdout=subprocess.PIPE,
    )
    try:
        assert watch.stdout is not None
        hello = await asyncio.wait_for(watch.stdout.readline(), 10)
        assert json.loads(hello)["event"] == "hello"
        status, _ = await daemon.request("POST", "/api/v1/sensors/hallway_motion", {"value": "on"})
        assert status == 200
        kinds: list[dict[str, object]] = []
        while not any(k["event"] == "trace" for k in kinds):
            kinds.append(json.loads(await asyncio.wait_for(watch.stdout.readline(), 10)))
        sensor = next(k for k in kinds if k["event"] == "sensor")
        assert sensor["id"] == "hallway_motion"
        assert sensor["value"] is True
        switched = next(k for k in kinds if k["event"] == "actuator")
        assert switched["id"] == "hallway_light"
        assert str(switched["who"]).startswith("rule hallway_motion_light")
    finally:
        watch.terminate()
        await asyncio.wait_for(watch.wait(), 10)

    shown = gateway(config, "trace", "hallway_motion_light")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "hallway_motion_light  finished" in lines[0]
    assert lines[0].endswith("<- hallway_motion=on (gpio)")
    assert any("actuate hallway_light on for 1s: switched on" in line for line in lines)
    as_json = json.loads(gateway(config, "trace", "hallway_motion_light", "--json").stdout)
    assert as_json[0]["result"] == "finished"
    missing = gateway(config, "trace", "nothing")
    assert missing.returncode == 1
    assert "no rule named 'nothing'" in missing.stderr

    assert gateway(config, "log-level").stdout.strip() == "info"
    changed = gateway(config, "log-level", "debug")
    assert changed.stdout.strip() == "log level of the gateway: debug"
    await daemon.request("POST", "/api/v1/sensors/hallway_motion", {"value": "off"})
    await daemon.wait_log("DEBUG")  # the daemon logs at debug now, without a restart
    assert gateway(config, "log-level").stdout.strip() == "debug"
