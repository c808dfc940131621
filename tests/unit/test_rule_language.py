"""The rule language on the virtual clock: triggers, conditions, actions and modes."""

from __future__ import annotations

import datetime as dt
import textwrap
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.rules.scenario_models import Scenario
from gateway.rules.scenarios import run_scenario
from gateway.rules.values import next_local_time
from tests.conftest import write_config

DEVICES = """
sensors:
  motion: {gpio: 17, kind: motion}
  button: {gpio: 23, kind: button}
  temp: {kind: virtual}
actuators:
  light: {gpio: 27}
  led: {gpio: 24}
webhooks:
  hub: {url: "http://127.0.0.1:9/"}
"""


def play(tmp_path: Path, rules: str, scenario: str) -> list[str]:
    config = write_config(
        tmp_path, DEVICES + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")
    )
    loaded = load_config(config)
    doc: dict[str, Any] = yaml.safe_load(textwrap.dedent(scenario))
    return run_scenario(loaded, Scenario.model_validate({"name": "t", **doc})).failures


DELAYED = """
- id: r
  when: {sensor: button, to: on}
  mode: %s
  then:
    - {webhook: hub, event: start}
    - delay: 10s
    - {webhook: hub, event: done}
"""

PRESSES = """
given:
  - {at: 0s, sensor: button, value: on}
  - {at: 1s, sensor: button, value: off}
  - {at: 4s, sensor: button, value: on}
"""


def test_single_mode_ignores_a_trigger_while_running(tmp_path: Path) -> None:
    assert (
        play(
            tmp_path,
            DELAYED % "single",
            PRESSES
            + """
expect:
  - {at: 10s, webhook: hub, event: done}
expect_not:
  - {at: 4s, webhook: hub, event: start}
  - {at: 14s, webhook: hub, event: done}
""",
        )
        == []
    )


def test_restart_mode_cancels_the_running_delay(tmp_path: Path) -> None:
    assert (
        play(
            tmp_path,
            DELAYED % "restart",
            PRESSES
            + """
expect:
  - {at: 4s, webhook: hub, event: start}
  - {at: 14s, webhook: hub, event: done}
expect_not:
  - {at: 10s, webhook: hub, event: done}
""",
        )
        == []
    )


def test_queued_mode_runs_one_after_the_other_in_order(tmp_path: Path) -> None:
    assert (
        play(
            tmp_path,
            DELAYED % "queued",
            PRESSES
            + """
expect:
  - {at: 10s, webhook: hub, event: done}
  - {at: 10s, webhook: hub, event: start}
  - {at: 20s, webhook: hub, event: done}
expect_not:
  - {at: 4s, webhook: hub, event: start}
""",
        )
        == []
    )


def test_parallel_mode_runs_both(tmp_path: Path) -> None:
    assert (
        play(
            tmp_path,
            DELAYED % "parallel",
            PRESSES
            + """
expect:
  - {at: 4s, webhook: hub, event: start}
  - {at: 10s, webhook: hub, event: done}
  - {at: 14s, webhook: hub, event: done}
""",
        )
        == []
    )


def test_every_fires_on_each_multiple_for_a_whole_day(tmp_path: Path) -> None:
    rules = """
- id: tick
  when: {every: 10m}
  then: [{webhook: hub, event: tick, data: {n: "{{ event.time }}"}}]
"""
    failures = play(
        tmp_path,
        rules,
        """
start: "2026-01-15T00:00:00"
expect:
  - {at: 10m, webhook: hub, event: tick}
  - {at: 23h50m, webhook: hub, event: tick}
expect_not:
  - {at: 15m, webhook: hub, event: tick}
""",
    )
    assert failures == []


def test_changes_by_a_step(tmp_path: Path) -> None:
    rules = """
- id: step
  when: {sensor: temp, changes: 2}
  then: [{webhook: hub, event: step, data: {v: "{{ event.value }}"}}]
"""
    assert (
        play(
            tmp_path,
            rules,
            """
given:
  - {at: 0s, sensor: temp, value: 20}
  - {at: 1m, sensor: temp, value: 21}
  - {at: 2m, sensor: temp, value: 22.5}
  - {at: 3m, sensor: temp, value: 23}
  - {at: 4m, sensor: temp, value: 24.4}
expect:
  - {at: 2m, webhook: hub, event: step, data: {v: 22.5}}
expect_not:
  - {at: 1m, webhook: hub}
  - {at: 3m, webhook: hub}
  - {at: 4m, webhook: hub}
""",
        )
        == []
    )


def test_for_is_cancelled_by_a_contrary_reading(tmp_path: Path) -> None:
    rules = """
- id: long_press
  when: {sensor: button, to: on, for: 2s}
  then: [{actuate: light, state: toggle}]
"""
    assert (
        play(
            tmp_path,
            rules,
            """
given:
  - {at: 0s, sensor: button, value: on}
  - {at: 1s, sensor: button, value: off}
  - {at: 10s, sensor: button, value: on}
expect:
  - {at: 5s, actuator: light, state: off}
  - {at: 11900ms, actuator: light, state: off}
  - {at: 12s, actuator: light, state: on}
""",
        )
        == []
    )


def test_any_not_and_template_conditions(tmp_path: Path) -> None:
    rules = """
- id: c
  when: {sensor: motion, to: on}
  if:
    - any:
        - {sensor: temp, below: 0}
        - template: "{{ sensors.temp > 30 }}"
    - not: {time: {after: "02:00", before: "03:00"}}
  then: [{webhook: hub, event: ok, data: {t: "{{ sensors.temp }}"}}]
"""
    scenario = """
start: "2026-01-15T12:00:00"
given:
  - {at: 0s, sensor: temp, value: %s}
  - {at: 1s, sensor: motion, value: on}
expect:
  - {at: 1s, webhook: hub, event: ok}
"""
    assert play(tmp_path, rules, scenario % -5) == []
    assert play(tmp_path, rules, scenario % 35) == []
    assert play(tmp_path, rules, scenario % 20) != []


def test_a_template_error_in_a_condition_counts_as_false(tmp_path: Path) -> None:
    rules = """
- id: c
  when: {sensor: motion, to: on}
  if: [{template: "{{ sensors.nope > 1 }}"}]
  then: [{webhook: hub, event: never}]
"""
    assert (
        play(
            tmp_path,
            rules,
            """
given: [{at: 0s, sensor: motion, value: on}]
expect_not: [{webhook: hub}]
""",
        )
        == []
    )


def test_startup_rules_run_at_once(tmp_path: Path) -> None:
    rules = """
- id: boot
  when: {startup: true}
  then: [{actuate: led, state: on}, {webhook: hub, event: booted}]
"""
    assert (
        play(
            tmp_path,
            rules,
            """
expect:
  - {at: 0s, actuator: led, state: on}
  - {at: 0s, webhook: hub, event: booted}
""",
        )
        == []
    )


def test_a_failing_scenario_says_what_happened_instead(tmp_path: Path) -> None:
    rules = """
- id: r
  when: {sensor: motion, to: on}
  then: [{actuate: light, state: on, for: 1m}]
"""
    failures = play(
        tmp_path,
        rules,
        """
given: [{at: 0s, sensor: motion, value: on}]
expect:
  - {at: 2m, actuator: light, state: on}
  - {at: 0s, webhook: hub, event: motion}
""",
    )
    assert failures == [
        "expected light is on at 2m00s, but it was off (it switched on at 0s, off at 1m00s)",
        "expected webhook hub motion at 0s, but no webhook was sent at all",
    ]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # spring forward (Berlin, 29 March 2026, 02:00 -> 03:00): 02:30 does not exist
        ("2026-03-29T01:00:00+01:00", "2026-03-29T03:30:00+02:00"),
        # fall back (25 October 2026, 03:00 -> 02:00): 02:30 happens twice, fires once
        ("2026-10-25T01:00:00+02:00", "2026-10-25T02:30:00+02:00"),
        ("2026-10-25T02:45:00+02:00", "2026-10-26T02:30:00+01:00"),
    ],
)
def test_at_is_dst_safe(now: str, expected: str) -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    moment = dt.datetime.fromisoformat(now).astimezone(berlin)
    due = next_local_time(moment, dt.time(2, 30))
    assert dt.datetime.fromtimestamp(due, berlin).isoformat() == expected


LIGHT_FOR_30S = """
- id: r
  when: {sensor: motion, to: on}
  then: [{actuate: light, state: on, for: 30s}]
"""


def test_expect_not_on_an_actuator_fails_a_wrong_scenario(tmp_path: Path) -> None:
    """An expect_not on an actuator is checked at its time (it used to pass unchecked)."""
    motion = "given: [{at: 0s, sensor: motion, value: on}]\n"
    wrong = motion + "expect_not: [{at: 5s, actuator: light, state: on}]"
    failures = play(tmp_path, LIGHT_FOR_30S, wrong)
    assert len(failures) == 1
    assert failures[0].startswith("expected not light is on at 5s, but it was on")
    right = motion + "expect_not: [{at: 31s, actuator: light, state: on}]"
    assert play(tmp_path, LIGHT_FOR_30S, right) == []


GESTURES = """
- {id: one, when: {sensor: button, gesture: click}, then: [{webhook: hub, event: click}]}
- id: two
  when: {sensor: button, gesture: double_click}
  then: [{webhook: hub, event: double}]
- id: hold
  when: {sensor: button, gesture: long_press, long_press: 2s}
  then: [{webhook: hub, event: long}]
"""


def test_a_click_a_double_click_and_a_long_press_on_the_virtual_clock(tmp_path: Path) -> None:
    failures = play(
        tmp_path,
        GESTURES,
        """
given:
  - {at: 0s, sensor: button, value: on}       # a click
  - {at: 200ms, sensor: button, value: off}
  - {at: 5s, sensor: button, value: on}       # a double click
  - {at: 5100ms, sensor: button, value: off}
  - {at: 5300ms, sensor: button, value: on}
  - {at: 5400ms, sensor: button, value: off}
  - {at: 10s, sensor: button, value: on}      # held 3 s: a long press, no click
  - {at: 13s, sensor: button, value: off}
  - {at: 20s, sensor: button, value: on}      # 800 ms: neither a click nor a long press
  - {at: 20800ms, sensor: button, value: off}
expect:
  - {at: 200ms, webhook: hub, event: click}
  - {at: 5100ms, webhook: hub, event: click}
  - {at: 5400ms, webhook: hub, event: double}
  - {at: 12s, webhook: hub, event: long}
expect_not:
  - {at: 200ms, webhook: hub, event: double}
  - {at: 13s, webhook: hub, event: click}
  - {at: 20800ms, webhook: hub, event: click}
  - {at: 20s, webhook: hub, event: long}
""",
    )
    assert failures == []


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ("{sensor: button, gesture: click, to: on}", "a gesture stands alone"),
        ("{sensor: button, gesture: long_press, for: 2s}", "a gesture stands alone"),
        ("{sensor: temp, gesture: click}", "a gesture needs an on/off sensor"),
    ],
)
def test_a_gesture_stands_alone_on_an_on_off_sensor(
    tmp_path: Path, trigger: str, message: str
) -> None:
    config = write_config(
        tmp_path, DEVICES + f"rules:\n  - {{id: g, when: {trigger}, then: [{{log: x}}]}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert any(message in p.message for p in caught.value.problems), caught.value.problems


def test_scenarios_assert_on_traces_and_say_what_happened_instead(tmp_path: Path) -> None:
    rules = """
    - id: warm
      when: {sensor: temp, above: 5}
      if: [{sensor: motion, is: on}]
      then: [{actuate: light, state: on}]
    """
    given = "given: [{at: 0s, sensor: temp, value: 2}, {at: 10s, sensor: temp, value: 8}]\n"
    passing = given + "expect: [{at: 10s, rule: warm, result: suppressed, condition: 1}]"
    assert play(tmp_path, rules, passing) == []
    wrong = given + "expect: [{at: 10s, rule: warm, result: finished}]"
    (failure,) = play(tmp_path, rules, wrong)
    assert failure == (
        "expected a trace of rule warm finished at 10s, but: suppressed at 10s "
        "(condition 1 does not hold: motion is on (no reading yet))"
    )
    never = given + "expect_not: [{rule: warm, result: suppressed}]"
    assert play(tmp_path, rules, never) == [
        "expected no trace of rule warm suppressed at any time, but: suppressed at 10s"
    ]
    unknown = given + "expect: [{rule: nothing}]"
    assert play(tmp_path, rules, unknown) == ["expect: unknown rule 'nothing'"]
