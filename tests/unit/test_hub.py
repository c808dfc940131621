"""The hub's pure parts: payload words, commands, discovery, and scenarios that give
MQTT commands and expect state publications."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.config.models import GatewayConfig
from gateway.events import UNAVAILABLE
from gateway.hub.commands import CommandError, parse_command
from gateway.hub.discovery import announcements
from gateway.hub.plan import HubPlan, state_word
from tests.conftest import scenario_outcomes

CONFIG = GatewayConfig.model_validate(
    {
        "gateway": {"name": "porch pi"},
        "mqtt": {"host": "127.0.0.1", "base": "site/porch"},
        "homeassistant": {"discovery": True},
        "sensors": {
            "probe": {"onewire": "28-0316a279cbff"},
            "hum": {"iio": "bme280", "channel": "humidityrelative"},
            "note": {"kind": "virtual", "type": "text", "publish_state": False},
        },
        "actuators": {
            "light": {"gpio": 27, "commands": True},
            "fan": {"gpio": 18, "kind": "pwm", "commands": True},
            "siren": {"gpio": 22},
            "led": {"gpio": 23, "kind": "led", "commands": True},
        },
    }
)


@pytest.mark.parametrize(
    ("value", "word"),
    [(True, "on"), (False, "off"), (21.5, "21.5"), (0.4, "0.4"), ("open", "open"), (None, "")],
)
def test_states_are_the_words_of_the_api(value: bool | float | str | None, word: str) -> None:
    assert state_word(value) == word
    assert state_word(UNAVAILABLE) == "unavailable"


@pytest.mark.parametrize(
    ("payload", "state", "for_"),
    [
        (b"on", True, None),
        (b" OFF\n", False, None),
        (b"Toggle", "toggle", None),
        (b"0.4", 0.4, None),
        (b'{"state": "on", "for": "30s"}', True, 30.0),
        (b'{"state": 0.25}', 0.25, None),
    ],
)
def test_a_command_is_the_body_the_api_takes(payload: bytes, state: object, for_: object) -> None:
    command = parse_command(payload)
    assert (command.state, command.for_) == (state, for_)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"banana", "state: expected on or off"),
        (b"\xff", "not UTF-8"),
        (b"{", "not JSON"),
        (b'{"for": "1s"}', "state: Field required"),
        (b'{"state": "on", "x": 1}', "x: Extra inputs"),
        (b"[" * 5000, "at most 1024"),
    ],
)
def test_anything_else_is_refused_with_a_reason(payload: bytes, why: str) -> None:
    with pytest.raises(CommandError, match=why.replace("[", r"\[")):
        parse_command(payload)


def test_the_plan_puts_every_topic_under_the_base_and_the_node_id_is_a_topic_level() -> None:
    plan = HubPlan.of(CONFIG)
    assert plan.node == "porch_pi"
    assert plan.status == "site/porch/status"
    assert plan.sensors == {"probe", "hum"}  # discovery publishes; note opted out
    assert plan.commands == {"light", "fan", "led"}
    assert plan.command_topics() == {
        "site/porch/fan/set": "fan",
        "site/porch/led/set": "led",
        "site/porch/light/set": "light",
    }
    assert plan.discovery_filters() == [
        "homeassistant/+/porch_pi/+/config",
        "homeassistant/status",  # Home Assistant's birth message: announce again
    ]


def test_discovery_gives_units_classes_and_the_right_component() -> None:
    configs = announcements(CONFIG, HubPlan.of(CONFIG))
    assert sorted(configs) == [
        "homeassistant/binary_sensor/porch_pi/siren/config",
        "homeassistant/light/porch_pi/fan/config",
        "homeassistant/light/porch_pi/led/config",  # an LED is an on/off light
        "homeassistant/sensor/porch_pi/hum/config",
        "homeassistant/sensor/porch_pi/probe/config",
        "homeassistant/switch/porch_pi/light/config",
    ]
    probe = configs["homeassistant/sensor/porch_pi/probe/config"]
    assert (probe["unit_of_measurement"], probe["device_class"]) == ("°C", "temperature")
    hum = configs["homeassistant/sensor/porch_pi/hum/config"]
    assert (hum["unit_of_measurement"], hum["device_class"]) == ("%", "humidity")
    fan = configs["homeassistant/light/porch_pi/fan/config"]
    assert fan["brightness_command_topic"] == fan["command_topic"] == "site/porch/fan/set"
    # an unavailable sensor is unavailable in Home Assistant, not a bad number
    assert probe["availability_mode"] == "all"
    assert probe["availability"][1]["topic"] == "site/porch/probe/state"


def test_scenarios_give_commands_and_expect_state_publications(tmp_path: Path) -> None:
    outcomes = scenario_outcomes(
        tmp_path,
        "gateway: {name: pi1}\n"
        "mqtt: {host: 127.0.0.1, publish_states: true, commands: true}\n"
        "sensors:\n  door: {kind: virtual, type: binary}\n"
        "actuators:\n  light: {gpio: 27, max_on: 1h}\n  lock: {gpio: 5, commands: false}\n",
        "- name: a command switches for a while and every state is published\n"
        "  given:\n"
        '    - {at: 0s, mqtt: gateway/pi1/light/set, payload: {state: "on", for: 30s}}\n'
        "    - {at: 5s, sensor: door, value: on}\n"
        "    - {at: 40s, mqtt: gateway/pi1/light/set, payload: {state: on, for: 2h}}\n"
        "    - {at: 50s, mqtt: gateway/pi1/lock/set, payload: 'on'}\n"
        "  expect:\n"
        "    - {at: 0s, mqtt: gateway/pi1/light/state, payload: 'on'}\n"
        "    - {at: 5s, mqtt: gateway/pi1/door/state, payload: 'on'}\n"
        "    - {at: 30s, mqtt: gateway/pi1/light/state, payload: 'off'}\n"
        "    - {at: 45s, actuator: light, state: off}\n"
        "    - {at: 55s, actuator: lock, state: off}\n",
    )
    assert [(p, f) for _, p, f in outcomes] == [(True, [])]


def test_a_state_may_be_a_template_and_later_templates_see_the_new_state(
    tmp_path: Path,
) -> None:
    """The workaround the issue names (a rule per state with mqtt_publish) echoed the
    old state: templates after an actuate now see what it asked for."""
    outcomes = scenario_outcomes(
        tmp_path,
        "mqtt: {host: 127.0.0.1}\n"
        "actuators:\n  light: {gpio: 27}\n  fan: {gpio: 18, kind: pwm}\n"
        "rules:\n"
        "  - id: relay\n"
        "    when: {mqtt: hub/light}\n"
        "    then:\n"
        '      - {actuate: light, state: "{{ event.payload.state }}"}\n'
        '      - {actuate: fan, state: "{{ event.payload.fan }}"}\n'
        "      - mqtt_publish: hub/echo\n"
        '        payload: "light {{ actuators.light }}, fan {{ actuators.fan }}"\n',
        "- name: the payload says what to switch to\n"
        "  given:\n"
        "    - {at: 0s, mqtt: hub/light, payload: {state: 'ON', fan: 0.4}}\n"
        "    - {at: 10s, mqtt: hub/light, payload: {state: toggle, fan: 2}}\n"
        "  expect:\n"
        "    - {at: 1s, actuator: light, state: on}\n"
        "    - {at: 1s, actuator: fan, state: 0.4}\n"
        "    - {at: 0s, mqtt: hub/echo, payload: 'light on, fan 0.4'}\n"
        "    - {at: 11s, actuator: light, state: off}\n"
        "    - {at: 11s, actuator: fan, state: 0.4}\n",  # 2 is not a level: skipped,
    )
    assert [(p, f) for _, p, f in outcomes] == [(True, [])]


def test_a_state_that_is_neither_a_state_nor_a_template_is_a_config_error(
    tmp_path: Path,
) -> None:
    from gateway.errors import ConfigError

    config = tmp_path / "gateway.yaml"
    config.write_text(
        "actuators:\n  light: {gpio: 27}\n"
        "rules:\n  - {id: r, when: {every: 1m}, then: [{actuate: light, state: brightest}]}\n"
    )
    with pytest.raises(ConfigError, match=re.escape("a level 0..1 or a {{ template }}")):
        load_config(config)
