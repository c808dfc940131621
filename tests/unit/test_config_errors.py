"""Every config mistake is reported as file:line:col: message, all in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError
from tests.conftest import write_config

BASE = """
sensors:
  hallway_motion: {gpio: 17, kind: motion}
actuators:
  hallway_light: {gpio: 27, kind: relay}
webhooks:
  home_hub: {url: "http://127.0.0.1:9/x"}
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p).replace(str(tmp_path) + "/", "") for p in info.value.problems]


def test_valid_demo_config_loads_with_summary() -> None:
    loaded = load_config("config/demo.yaml")
    assert loaded.summary() == "2 sensors, 1 actuators, 4 rules, 1 webhooks"


def test_unknown_key_is_reported_at_the_key_with_a_suggestion(tmp_path: Path) -> None:
    found = problems(tmp_path, "gateway:\n  name: x\n  simulat: true\n")
    assert found == ["gateway.yaml:3:3: unknown key 'simulat' (did you mean 'simulate'?)"]


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE + "  home_hub: {url: 'http://127.0.0.1:9/y'}\n")
    assert found == ["gateway.yaml:7:3: duplicate key 'home_hub' (first defined at line 6)"]


def test_wrong_type_points_at_the_value(tmp_path: Path) -> None:
    found = problems(tmp_path, "sensors:\n  door: {gpio: seventeen}\n")
    assert len(found) == 1
    assert found[0].startswith("gateway.yaml:2:16: sensors.door.gpio: input should be")


def test_bad_duration_says_how_to_write_one(tmp_path: Path) -> None:
    text = BASE.replace("kind: relay}", "kind: relay, max_on: 5 parsecs}")
    found = problems(tmp_path, text)
    assert found == [
        "gateway.yaml:4:50: actuators.hallway_light.max_on: '5 parsecs' is not a duration:"
        " write e.g. 250ms, 30s, 5m, 1h30m or 2d"
    ]


def test_unknown_references_in_rules_name_the_known_ones(tmp_path: Path) -> None:
    rules = """
rules:
  - id: r
    when: {sensor: hallway_motoin, to: on}
    then:
      - {actuate: hall_light, state: on}
      - {webhook: hub, event: x}
"""
    found = problems(tmp_path, BASE + rules)
    assert found == [
        "gateway.yaml:10:20: unknown sensor 'hallway_motoin' (did you mean 'hallway_motion'?)",
        "gateway.yaml:12:19: unknown actuator 'hall_light' (did you mean 'hallway_light'?)",
        "gateway.yaml:13:19: unknown webhook 'hub'; known: home_hub",
    ]


def test_missing_secret_and_env_are_reported_without_values(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("hub_secret: whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\n")
    text = """
webhooks:
  home_hub:
    url: http://127.0.0.1:9/x
    secret: !secret hub_secrett
    headers: {Authorization: !env GATEWAY_TEST_NOT_SET}
"""
    found = problems(tmp_path, text)
    assert found == [
        "gateway.yaml:4:13: secret 'hub_secrett' is not defined in secrets.yaml beside the config",
        "gateway.yaml:5:30: environment variable 'GATEWAY_TEST_NOT_SET' is not set"
        " (and no default is given)",
    ]


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text("hub_secret: not-a-whsec-super-secret-value\n")
    text = "webhooks:\n  hub: {url: 'http://127.0.0.1:9/', secret: !secret hub_secret}\n"
    found = problems(tmp_path, text)
    assert len(found) == 1
    assert found[0].startswith("gateway.yaml:2:45: webhooks.hub.secret: a signing secret starts")
    assert "super-secret" not in "".join(found)


def test_unquoted_time_of_day_gets_a_hint_to_quote_it(tmp_path: Path) -> None:
    rules = """
rules:
  - id: r
    when: {sensor: hallway_motion, to: on}
    if: [{time: {after: 18:00}}]
    then: [{actuate: hallway_light, state: on}]
"""
    found = problems(tmp_path, BASE + rules)
    assert found == [
        "gateway.yaml:11:25: rules.0.if.0.time.after: YAML read this time as the number 1080:"
        ' put it in quotes, e.g. "18:00"'
    ]


def test_template_syntax_error_is_a_config_error(tmp_path: Path) -> None:
    rules = """
rules:
  - id: r
    when: {sensor: hallway_motion, to: on}
    then:
      - webhook: home_hub
        event: x
        data: {v: "{{ event.value "}
"""
    found = problems(tmp_path, BASE + rules)
    assert len(found) == 1
    assert found[0].startswith("gateway.yaml:14:15: rules.0.then.0.data: template syntax error")


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    found = problems(tmp_path, "sensors:\n  a: {gpio: 1\n  b: 2\n")
    assert len(found) == 1
    assert found[0].startswith("gateway.yaml:3:")
    assert "YAML syntax error" in found[0]


def test_errors_in_an_included_file_name_that_file(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "- id: r\n  when: {sensor: hallway_motion, to: on}\n  then: [{actuat: hallway_light}]\n"
    )
    found = problems(tmp_path, BASE + "rules: !include rules.yaml\n")
    assert found == [
        "rules.yaml:3:10: rules.0.then.0: an action needs one of: actuate, webhook, notify,"
        " log, mqtt_publish, serial_write, delay"
    ]


def test_include_outside_the_config_directory_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "rules: !include ../../etc/passwd\n")
    assert found == [
        "gateway.yaml:1:8: !include '../../etc/passwd' points outside the config directory"
    ]


def test_the_same_pin_twice_is_an_error(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE.replace("gpio: 27", "gpio: 17"))
    assert found == ["gateway.yaml:4:25: GPIO 17 is already used by sensor 'hallway_motion'"]


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    text = (
        "gateway: {nme: x}\nsensors:\n  a: {gpio: 99}\nactuators:\n  b: {gpio: 3, initial: maybe}\n"
    )
    found = problems(tmp_path, text)
    assert [f.split(":")[1] for f in found] == ["1", "3", "5"]


def test_non_loopback_listen_without_tokens_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "server: {listen: '0.0.0.0:8080'}\n")
    assert found == [
        "gateway.yaml:1:18: listening on 0.0.0.0 (not loopback) needs server.tokens:"
        " the API would be open to the network"
    ]


def test_bare_on_and_quoted_on_mean_the_same(tmp_path: Path) -> None:
    rules = """
rules:
  - {id: a, when: {sensor: hallway_motion, to: on}, then: [{actuate: hallway_light, state: on}]}
  - id: b
    when: {sensor: hallway_motion, to: "ON"}
    then: [{actuate: hallway_light, state: "off"}]
"""
    loaded = load_config(write_config(tmp_path, BASE + rules))
    assert loaded.config.rules[0].when[0].to is True  # type: ignore[union-attr]
    assert loaded.config.rules[1].when[0].to is True  # type: ignore[union-attr]
    assert loaded.config.rules[1].then[0].state is False  # type: ignore[union-attr]


def test_secrets_and_env_values_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secrets.yaml").write_text("hub_secret: whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\n")
    monkeypatch.setenv("HUB_TOKEN", "Bearer abc")
    text = """
webhooks:
  home_hub:
    url: !env HUB_URL http://127.0.0.1:9/default
    secret: !secret hub_secret
    headers: {Authorization: !env HUB_TOKEN}
"""
    hub = load_config(write_config(tmp_path, text)).config.webhooks["home_hub"]
    assert hub.url == "http://127.0.0.1:9/default"
    assert hub.secrets == ["whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"]
    assert hub.headers["Authorization"].get_secret_value() == "Bearer abc"
    assert "abc" not in repr(hub)


def test_a_pulled_down_input_on_an_i2c_pin_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "sensors:\n  pir: {gpio: 2, kind: motion}\n")
    assert found == [
        "gateway.yaml:2:15: GPIO 2 has a fixed 1.8 kΩ pull-up on every Pi (it is I2C): wire the"
        " input to ground and use pull_up: true, or choose another pin"
    ]


def test_an_unavailable_pin_factory_names_the_package_to_install() -> None:
    from gateway.errors import HardwareError
    from gateway.pins import make_pin_factory

    with pytest.raises(HardwareError) as info:
        make_pin_factory("rpigpio", simulate=False)
    message = str(info.value)
    assert "rpigpio" in message
    assert "sudo apt install python3-rpi.gpio" in message or "not a Raspberry Pi" in message
    assert "--simulate" in message


def test_mqtt_and_serial_parts_need_their_sections(tmp_path: Path) -> None:
    text = (
        "sensors:\n  door: {mqtt: home/door}\n  temp: {serial: board, field: t}\n"
        "rules:\n  - {id: r, when: {mqtt: 'a/#'}, then: [{serial_write: board, data: x}]}\n"
    )
    found = problems(tmp_path, text)
    assert found == [
        "gateway.yaml:2:16: an MQTT sensor needs an mqtt: section (the broker)",
        "gateway.yaml:3:18: unknown serial port 'board': none is declared",
        "gateway.yaml:5:26: an mqtt trigger needs an mqtt: section",
        "gateway.yaml:5:56: unknown serial port 'board': none is declared",
    ]


def test_a_hook_schema_that_is_not_json_schema_is_refused(tmp_path: Path) -> None:
    text = (
        "server:\n  hooks:\n    door:\n      verify: token\n      token: door-token-0123456789\n"
        "      schema: {type: objekt}\n"
    )
    found = problems(tmp_path, text)
    assert len(found) == 1
    assert found[0].startswith(
        "gateway.yaml:6:15: server.hooks.door.schema: not a valid JSON Schema: type: 'objekt'"
    )


def test_durations_longer_than_a_year_are_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "actuators:\n  x: {gpio: 5, max_on: 400d}\n")
    assert found == [
        "gateway.yaml:2:24: actuators.x.max_on: '400d' is too long: a duration is at most 366d"
    ]


def test_one_run_reports_broken_parts_and_the_names_the_rest_gets_wrong(tmp_path: Path) -> None:
    """A broken sensor does not hide a typo in a rule (two passes, shown at once); a
    rule that names the broken sensor is not reported again (its error says it)."""
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "sensors:\n"
        "  motion: {gpio: 17, kind: motoin}\n"
        "  door: {gpio: 22, kind: button}\n"
        "actuators:\n"
        "  light: {gpio: 27}\n"
        "rules:\n"
        "  - {id: a, when: {sensor: motion, to: on}, then: [{actuate: light, state: on}]}\n"
        "  - {id: b, when: {sensor: door, to: on}, then: [{actuate: lihgt, state: on}]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    found = [str(p).removeprefix(f"{path}:") for p in caught.value.problems]
    assert found[0].startswith("2:28: sensors.motion.kind:")
    assert found[1:] == ["8:60: unknown actuator 'lihgt' (did you mean 'light'?)"]


@pytest.mark.parametrize("event", ["motion detected", "motion-detected", "freezer/warm", "é"])
def test_an_event_type_outside_the_recommended_form_is_a_config_error(
    tmp_path: Path, event: str
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "sensors: {door: {kind: virtual, type: binary}}\n"
        "webhooks: {hub: {url: 'http://127.0.0.1:9/'}}\n"
        f"rules: [{{id: r, when: {{sensor: door}}, then: [{{webhook: hub, event: '{event}'}}]}}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert "an event type is letters, digits, '_' and '.'" in problem.message
    assert problem.line == 3


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("{actuate: light, state: on, while: ghost}", "unknown sensor 'ghost'"),
        ("{actuate: light, state: on, while: temp}", "while needs an on/off sensor; 'temp'"),
        ("{actuate: light, state: toggle, while: door}", "while holds a state"),
    ],
)
def test_while_needs_an_on_off_sensor_and_a_state(
    tmp_path: Path, action: str, message: str
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "sensors: {door: {kind: virtual, type: binary}, temp: {kind: virtual}}\n"
        "actuators: {light: {gpio: 27}}\n"
        f"rules: [{{id: r, when: {{sensor: door}}, then: [{action}]}}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(message in p.message for p in caught.value.problems), caught.value.problems


def test_publishing_and_commands_need_a_broker(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "sensors:\n  door: {gpio: 5, publish_state: true}\n"
        "actuators:\n  light: {gpio: 27, commands: true}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    messages = sorted(p.message for p in caught.value.problems)
    assert messages == [
        "commands needs an mqtt: section (the broker)",
        "publishing needs an mqtt: section",
    ]
