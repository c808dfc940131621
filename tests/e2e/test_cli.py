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
        "config/demo.yaml: ok: 2 sensors, 1 actuators, 4 rules, 1 webhooks"
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
    # the rule's names are checked in the same run, the broken webhook aside
    assert lines[2] == f"{config}:5:28: unknown sensor 'ghost': none is declared"
    assert lines[3] == f"{config}:5:61: unknown actuator 'x': none is declared"
    assert lines[-1] == "4 error(s) in the config"


def test_schema_is_json_schema_that_accepts_the_demo_and_rejects_typos() -> None:
    import jsonschema
    import yaml

    result = gateway("schema")
    schema = json.loads(result.stdout)
    assert schema["title"] == "Edge Gateway config"
    assert schema["$defs"]["SensorTrigger"]["properties"]["for"]["description"]
    demo = yaml.safe_load(Path("config/demo.yaml").read_text())
    jsonschema.validate(demo, schema)  # editors must not flag a valid config
    demo["rules"][0]["when"]["tpyo"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(demo, schema)


def test_outbox_commands_work_on_a_stopped_daemons_state(tmp_path: Path) -> None:
    from gateway.outbox.store import OutboxStore

    config = demo_like_config(tmp_path, 1, "http://127.0.0.1:9/")
    store = OutboxStore(tmp_path / "state" / "outbox.db")
    store.start()
    msg_id = store.submit("home_hub", "motion.detected", {"where": "hallway"})
    store.stop()
    stats = gateway("outbox", "--config", str(config), "stats", "--json")
    assert json.loads(stats.stdout)["pending"] == 1
    table = gateway("outbox", "--config", str(config), "stats").stdout.splitlines()
    assert table[0].startswith("1 pending, 0 dead; oldest waiting ")
    assert table[2].split() == ["ENDPOINT", "PENDING", "DEAD", "OLDEST", "STATE"]
    assert table[3].split()[:3] == ["home_hub", "1", "0"]
    listing = gateway("outbox", "--config", str(config), "list").stdout.splitlines()
    assert listing[0].split()[:4] == ["ID", "ENDPOINT", "EVENT", "STATE"]
    assert listing[1].split()[:5] == [msg_id, "home_hub", "motion.detected", "pending", "0"]
    shown = json.loads(gateway("outbox", "--config", str(config), "show", msg_id, "--json").stdout)
    assert json.loads(shown["body"])["data"] == {"where": "hallway"}
    person = gateway("outbox", "--config", str(config), "show", msg_id).stdout
    assert f"id:          {msg_id}" in person
    assert '"where": "hallway"' in person
    retried = gateway("outbox", "--config", str(config), "retry", msg_id)
    assert retried.stdout.strip() == "1 message(s) will be sent again"
    missing = gateway("outbox", "--config", str(config), "show", "msg_nope")
    assert missing.returncode == 1
    # as the README writes them: the options after the action
    after = gateway("outbox", "stats", "--json", "--config", str(config))
    assert json.loads(after.stdout)["pending"] == 1
    by_dir = gateway("outbox", "list", "--state-dir", str(tmp_path / "state"))
    assert msg_id in by_dir.stdout


@pytest.mark.parametrize("name", ["demo", "gateway.example", "reference"])
def test_the_shipped_scenarios_pass(name: str) -> None:
    result = gateway("test", "--config", f"config/{name}.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith(" passed, 0 failed")


def test_a_failing_scenario_exits_1_with_a_readable_report(tmp_path: Path) -> None:
    scenarios = tmp_path / "wrong.test.yaml"
    scenarios.write_text(
        "- name: the light stays on for an hour (it does not)\n"
        "  given: [{at: 0s, sensor: hallway_motion, value: on},"
        " {at: 5s, sensor: hallway_motion, value: off}]\n"
        "  expect: [{at: 1h, actuator: hallway_light, state: on}]\n"
        "- name: motion is reported\n"
        "  given: [{at: 0s, sensor: hallway_motion, value: on}]\n"
        "  expect: [{at: 0s, webhook: home_hub, event: motion.detected}]\n"
    )
    result = gateway("test", "--config", "config/demo.yaml", str(scenarios))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "FAIL  the light stays on for an hour (it does not)",
        "      expected hallway_light is on at 1h00m00s, but it was off"
        " (it switched on at 0s, off at 35s)",
        "PASS  motion is reported",
        "1 passed, 1 failed",
    ]


def test_a_broken_scenario_file_is_reported_with_positions(tmp_path: Path) -> None:
    scenarios = tmp_path / "broken.test.yaml"
    scenarios.write_text("- name: x\n  given: [{at: soon, sensor: hallway_motion, value: on}]\n")
    result = gateway("test", "--config", "config/demo.yaml", str(scenarios))
    assert result.returncode == 2
    assert f"{scenarios}:2:16: 0.given.0.at: 'soon' is not a duration" in result.stderr


def test_output_piped_into_head_ends_quietly() -> None:
    result = subprocess.run(
        f"{sys.executable} -m gateway schema | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == '{\n  "$defs'
    assert "Traceback" not in result.stderr
