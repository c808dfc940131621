"""``gateway check``, ``gateway schema`` and ``gateway outbox`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import demo_like_config


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60
    )


def test_check_accepts_the_demo_config_with_a_summary() -> None:
    result = gateway("check", "--config", "config/demo.yaml")
    assert result.returncode == 0
    assert result.stdout.strip() == (
        "config/demo.yaml: ok: 1 sensors, 1 actuators, 1 rules, 1 webhooks"
    )


@pytest.mark.parametrize("name", ["gateway.example.yaml", "reference.yaml"])
def test_check_accepts_the_shipped_configs(name: str) -> None:
    result = gateway("check", "--config", f"config/{name}")
    assert result.returncode == 0, result.stderr


def test_check_lists_every_error_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("hub: whsec_but-this-is-not-base64-secret!!\n")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "gateway: {nmae: x}\n"
        "webhooks:\n  hub: {url: 'http://127.0.0.1:9/', secret: !secret hub}\n"
        "rules:\n  - {id: r, when: {sensor: ghost, to: on}, then: [{actuate: x, state: on}]}\n"
    )
    result = gateway("check", "--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"{config}:1:11: unknown key 'nmae' (did you mean 'name'?)"
    assert lines[1].startswith(f"{config}:3:45: webhooks.hub.secret:")
    assert "this-is-not" not in result.stderr
    assert lines[-1] == "2 error(s) in the config"


def test_schema_is_json_schema_with_descriptions() -> None:
    result = gateway("schema")
    schema = json.loads(result.stdout)
    assert schema["title"] == "Edge Gateway config"
    assert "sensors" in schema["properties"]
    assert "description" in json.dumps(schema)


def test_outbox_commands_work_on_a_stopped_daemons_state(tmp_path: Path) -> None:
    from gateway.outbox.store import OutboxStore

    config = demo_like_config(tmp_path, 1, "http://127.0.0.1:9/")
    store = OutboxStore(tmp_path / "state" / "outbox.db")
    store.start()
    msg_id = store.submit("home_hub", "motion.detected", {"where": "hallway"})
    store.stop()
    stats = gateway("outbox", "--config", str(config), "stats")
    assert json.loads(stats.stdout)["pending"] == 1
    listing = gateway("outbox", "--config", str(config), "list")
    assert msg_id in listing.stdout
    shown = json.loads(gateway("outbox", "--config", str(config), "show", msg_id).stdout)
    assert json.loads(shown["body"])["data"] == {"where": "hallway"}
    retried = gateway("outbox", "--config", str(config), "retry", msg_id)
    assert retried.stdout.strip() == "1 message(s) will be sent again"
    missing = gateway("outbox", "--config", str(config), "show", "msg_nope")
    assert missing.returncode == 1
