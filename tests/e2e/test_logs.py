"""The daemon's log lines under journald (``<N>`` priorities) and as JSON."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Daemon, free_port, write_config

pytestmark = pytest.mark.e2e


def small_config(tmp: Path, port: int) -> Path:
    return write_config(
        tmp,
        f"""
        gateway: {{state_dir: {tmp / "state"}, simulate: true}}
        server: {{listen: 127.0.0.1:{port}}}
        """,
    )


async def run_once(daemon: Daemon, env: dict[str, str] | None = None, *extra: str) -> str:
    daemon.start(*extra, env=env)
    await daemon.wait_ready()
    status, _ = await daemon.request("POST", "/api/v1/sensors/nope", {"value": 1})
    assert status == 404
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    return daemon.log()


async def test_under_journald_every_line_carries_its_priority(
    tmp_path: Path, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    port = free_port()
    daemon = daemon_factory(small_config(tmp_path, port), port)
    daemon.log_path.touch()
    stat = os.stat(daemon.log_path)  # stderr is this file: the "journal"
    log = await run_once(daemon, {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"})
    lines = [line for line in log.splitlines() if line]
    assert lines
    assert all(line[:3] in ("<6>", "<4>", "<3>", "<7>") for line in lines), lines[:5]
    assert any(line.startswith("<6>gateway.app: ready") for line in lines)


async def test_a_journal_stream_of_another_file_is_not_the_journal(
    tmp_path: Path, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    port = free_port()
    daemon = daemon_factory(small_config(tmp_path, port), port)
    log = await run_once(daemon, {"JOURNAL_STREAM": "1:2"})
    assert not any(line.startswith("<") for line in log.splitlines())


async def test_log_format_json_is_one_object_a_line(
    tmp_path: Path, daemon_factory: Callable[[Path, int], Daemon]
) -> None:
    port = free_port()
    daemon = daemon_factory(small_config(tmp_path, port), port)
    log = await run_once(daemon, None, "--log-format", "json")
    docs = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(docs[0])
    assert docs[0]["time"].endswith("Z")
    assert any(d["message"].startswith("ready") for d in docs)
