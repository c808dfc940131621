"""Rule decisions from the pure engine: an event, states and a clock in; decisions out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gateway.config.models import GatewayConfig
from gateway.config.rules import Rule
from gateway.events import GatewayStarted, SensorChanged
from gateway.rules.decisions import SendWebhook, SetActuator, Snapshot, WriteLog
from gateway.rules.engine import RuleEngine

TZ = dt.UTC


def rules(*docs: dict[str, Any]) -> list[Rule]:
    config = GatewayConfig.model_validate(
        {
            "sensors": {
                "motion": {"gpio": 17, "kind": "motion"},
                "temp": {"kind": "virtual"},
            },
            "actuators": {"light": {"gpio": 27}},
            "webhooks": {"hub": {"url": "http://127.0.0.1:9/"}},
            "rules": list(docs),
        }
    )
    return config.rules


def at(hour: int, minute: int = 0, day: int = 15) -> Snapshot:
    return Snapshot({}, {}, dt.datetime(2026, 1, day, hour, minute, tzinfo=TZ))


def changed(sensor: str, value: Any, previous: Any, snapshot: Snapshot) -> SensorChanged:
    return SensorChanged(sensor, value, previous, snapshot.now.timestamp(), "test")


MOTION_LIGHT = {
    "id": "motion_light",
    "when": {"sensor": "motion", "to": True},
    "if": [{"time": {"after": "18:00", "before": "07:00"}}],
    "then": [
        {"actuate": "light", "state": "on", "for": "5m"},
        {"webhook": "hub", "event": "motion.detected", "data": {"at": "{{ event.time }}"}},
    ],
}


@pytest.mark.parametrize(
    ("hour", "minute", "fires"),
    [
        (18, 0, True),
        (23, 59, True),
        (0, 0, True),
        (6, 59, True),
        (7, 0, False),
        (12, 0, False),
        (17, 59, False),
    ],
)
def test_motion_after_dark_window_spans_midnight(hour: int, minute: int, fires: bool) -> None:
    engine = RuleEngine(rules(MOTION_LIGHT))
    snap = at(hour, minute)
    decisions = engine.handle(changed("motion", True, False, snap), snap)
    assert bool(decisions) is fires


def test_motion_turns_light_on_for_5_minutes_and_tells_the_hub() -> None:
    engine = RuleEngine(rules(MOTION_LIGHT))
    snap = at(21, 5)
    decisions = engine.handle(changed("motion", True, False, snap), snap)
    assert decisions == [
        SetActuator("light", True, 300.0, "motion_light"),
        SendWebhook("hub", "motion.detected", {"at": "2026-01-15T21:05:00.000Z"}, "motion_light"),
    ]


def test_to_does_not_fire_on_the_other_edge() -> None:
    engine = RuleEngine(rules(MOTION_LIGHT))
    snap = at(21)
    assert engine.handle(changed("motion", False, True, snap), snap) == []
    assert engine.handle(changed("temp", 1.0, None, snap), snap) == []
    # a repeated reading never reaches the engine: the runtime stops it (test_runtime)


def test_above_fires_on_the_crossing_not_on_every_reading_above() -> None:
    rule = {
        "id": "warm",
        "when": {"sensor": "temp", "above": -10},
        "then": [{"webhook": "hub", "event": "freezer.warm", "data": {"t": "{{ event.value }}"}}],
    }
    engine = RuleEngine(rules(rule))
    snap = at(12)
    assert engine.handle(changed("temp", -12.0, -15.0, snap), snap) == []
    fired = engine.handle(changed("temp", -9.5, -12.0, snap), snap)
    assert fired == [SendWebhook("hub", "freezer.warm", {"t": -9.5}, "warm")]  # a number, not text
    assert engine.handle(changed("temp", -8.0, -9.5, snap), snap) == []


def test_weekdays_of_a_midnight_window_belong_to_the_evening_it_started() -> None:
    rule = dict(
        MOTION_LIGHT,
        **{"if": [{"time": {"after": "22:00", "before": "02:00", "weekdays": ["fri"]}}]},
    )
    engine = RuleEngine(rules(rule))
    friday_late, saturday_early, saturday_late = at(23, day=16), at(1, day=17), at(23, day=17)
    for snap, fires in ((friday_late, True), (saturday_early, True), (saturday_late, False)):
        assert bool(engine.handle(changed("motion", True, False, snap), snap)) is fires


def test_cooldown_suppresses_repeats() -> None:
    rule = dict(MOTION_LIGHT, cooldown="10m")
    rule.pop("if")
    engine = RuleEngine(rules(rule))
    first, soon, later = at(12, 0), at(12, 5), at(12, 11)
    assert engine.handle(changed("motion", True, False, first), first)
    assert engine.handle(changed("motion", True, False, soon), soon) == []
    assert engine.handle(changed("motion", True, False, later), later)


def test_sensor_condition_and_disabled_rules() -> None:
    rule = {
        "id": "cold_motion",
        "when": {"sensor": "motion", "to": "on"},
        "if": [{"sensor": "temp", "below": 5}],
        "then": [{"log": "cold and moving: {{ sensors.temp }}"}],
    }
    engine = RuleEngine(rules(rule, dict(rule, id="off", enabled=False)))
    warm = Snapshot({"temp": 20.0}, {}, at(12).now)
    cold = Snapshot({"temp": 2.0}, {}, at(12).now)
    assert engine.handle(changed("motion", True, False, warm), warm) == []
    assert engine.handle(changed("motion", True, False, cold), cold) == [
        WriteLog(20, "cold and moving: 2.0", "cold_motion")
    ]


def test_a_template_error_at_run_time_skips_only_that_action(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rule = {
        "id": "typo",
        "when": {"startup": True},
        "then": [
            {"webhook": "hub", "event": "x", "data": {"v": "{{ sensors.nope }}"}},
            {"actuate": "light", "state": "toggle"},
        ],
    }
    engine = RuleEngine(rules(rule))
    decisions = engine.handle(GatewayStarted(0.0), at(12))
    assert decisions == [SetActuator("light", "toggle", None, "typo")]
    assert "rule typo: action skipped" in caplog.text
    assert "nope" in caplog.text


def test_a_suppressed_trigger_says_why_at_info_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """'Why didn't my freezer rule fire?' without a restart at debug level."""
    config = GatewayConfig.model_validate(
        {
            "sensors": {"freezer": {"kind": "virtual"}, "door": {"kind": "virtual"}},
            "webhooks": {"hub": {"url": "http://127.0.0.1:9/"}},
            "rules": [
                {
                    "id": "warm",
                    "when": {"sensor": "freezer", "above": -10},
                    "if": [
                        {"time": {"after": "08:00", "before": "20:00"}},
                        {"sensor": "door", "below": 1},
                    ],
                    "cooldown": "1h",
                    "then": [{"webhook": "hub", "event": "freezer.warm"}],
                }
            ],
        }
    )
    engine = RuleEngine(config.rules)
    noon = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    snap = Snapshot({"freezer": -5.0, "door": 3.0}, {}, noon, "pi")
    caplog.set_level("INFO", logger="gateway.rules.engine")
    assert engine.handle(SensorChanged("freezer", -5.0, -18.0, noon.timestamp(), "t"), snap) == []
    assert "rule warm: not run: condition 2 does not hold: door below 1 (it is 3.0)" in caplog.text
    snap = Snapshot({"freezer": -4.0, "door": 0.0}, {}, noon, "pi")
    engine.handle(SensorChanged("freezer", -20.0, -5.0, noon.timestamp(), "t"), snap)
    assert engine.handle(SensorChanged("freezer", -4.0, -20.0, noon.timestamp(), "t"), snap)
    engine.handle(SensorChanged("freezer", -20.0, -4.0, noon.timestamp() + 1, "t"), snap)
    engine.handle(SensorChanged("freezer", -3.0, -20.0, noon.timestamp() + 2, "t"), snap)
    assert "rule warm: not run: in cooldown until 13:00:00" in caplog.text
    assert engine.suppressed == {("warm", "condition"): 1, ("warm", "cooldown"): 1}
