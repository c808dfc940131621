"""The runtime applies decisions: auto-off timers, max_on, and timers that survive restarts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.config.models import GatewayConfig
from gateway.rules.runtime import Runtime
from gateway.rules.timerkinds import Step, Switch, TimerKind
from gateway.rules.timers import TimerTable
from gateway.testing import MemoryActuators, RecordingOutbox, VirtualClock

START = 1_760_000_000.0


def sent(outbox: RecordingOutbox) -> list[tuple[str, str, Any]]:
    return [(s.endpoint, s.event, s.data) for s in outbox.sent]


CONFIG = GatewayConfig.model_validate(
    {
        "sensors": {"motion": {"gpio": 17, "kind": "motion"}},
        "actuators": {"light": {"gpio": 27, "max_on": "1h"}, "fan": {"gpio": 22}},
        "webhooks": {"hub": {"url": "http://127.0.0.1:9/"}},
        "rules": [
            {
                "id": "motion_light",
                "when": {"sensor": "motion", "to": "on"},
                "then": [
                    {"actuate": "light", "state": "on", "for": "5m"},
                    {
                        "webhook": "hub",
                        "event": "motion.detected",
                        "data": {"v": "{{ event.value }}"},
                    },
                ],
            }
        ],
    }
)


def make(
    tmp_path: Path,
    clock: VirtualClock,
    relays: MemoryActuators | None = None,
    config: GatewayConfig = CONFIG,
) -> tuple[Runtime, MemoryActuators, RecordingOutbox]:
    relays = relays or MemoryActuators(dict.fromkeys(config.actuators, False), clock)
    outbox = RecordingOutbox(clock)
    runtime = Runtime(config, relays, outbox, TimerTable(tmp_path / "timers.json"), clock)
    runtime.start(startup=False)
    return runtime, relays, outbox


def test_motion_turns_light_on_then_off_after_5_minutes(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, relays, outbox = make(tmp_path, clock)
    runtime.reading("motion", True, "test")
    assert relays.states["light"] is True
    assert sent(outbox) == [("hub", "motion.detected", {"v": True})]
    clock.now += 299
    runtime.run_due()
    assert relays.states["light"] is True
    clock.now += 1
    runtime.run_due()
    assert relays.states["light"] is False


def test_motion_again_restarts_the_5_minutes(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, relays, _ = make(tmp_path, clock)
    runtime.reading("motion", True, "test")
    clock.now += 200
    runtime.reading("motion", False, "test")
    runtime.reading("motion", True, "test")
    clock.now += 200
    runtime.run_due()
    assert relays.states["light"] is True
    clock.now += 100
    runtime.run_due()
    assert relays.states["light"] is False


def test_max_on_switches_off_whatever_the_rules_say(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, relays, _ = make(tmp_path, clock)
    runtime.actuate("light", True, None, "test")
    clock.now += 3599
    runtime.run_due()
    assert relays.states["light"] is True
    clock.now += 1
    runtime.run_due()
    assert relays.states["light"] is False
    assert len(runtime.timers) == 0


def test_an_auto_off_survives_a_restart_and_fires_at_its_original_time(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, relays, _ = make(tmp_path, clock)
    runtime.reading("motion", True, "test")
    clock.now += 60
    # the process dies; a new one starts with the relay still on and the saved timers
    restarted, _, _ = make(tmp_path, clock, relays)
    assert restarted.next_due() == clock.now + 240
    clock.now += 239
    restarted.run_due()
    assert relays.states["light"] is True
    clock.now += 1
    restarted.run_due()
    assert relays.states["light"] is False


def test_a_timer_missed_while_stopped_fires_at_once(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, relays, _ = make(tmp_path, clock)
    runtime.reading("motion", True, "test")
    clock.now += 3 * 3600  # the gateway was off for three hours
    restarted, _, _ = make(tmp_path, clock, relays)
    restarted.run_due()
    assert relays.states["light"] is False


def test_toggle_and_manual_switch_cancel_the_pending_auto_off(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, relays, _ = make(tmp_path, clock)
    runtime.actuate("fan", True, 10, "test")
    assert runtime.timers.get(TimerKind.REVERT, "fan") is not None
    assert runtime.actuate("fan", "toggle", None, "test") is False
    assert runtime.timers.get(TimerKind.REVERT, "fan") is None


def doorbell(mode: str) -> GatewayConfig:
    """A rule that says ``start``, waits 10 s and says ``done`` with the press's value."""
    return GatewayConfig.model_validate(
        {
            "sensors": {"bell": {"kind": "virtual", "type": "number"}},
            "actuators": {},
            "webhooks": {"hub": {"url": "http://127.0.0.1:9/"}},
            "rules": [
                {
                    "id": "ring",
                    "when": {"sensor": "bell", "changes": True},
                    "mode": mode,
                    "then": [
                        {"webhook": "hub", "event": "start", "data": "{{ event.value }}"},
                        {"delay": "10s"},
                        {"webhook": "hub", "event": "done", "data": "{{ event.value }}"},
                    ],
                }
            ],
        }
    )


def test_runs_waiting_in_a_queue_survive_a_restart(tmp_path: Path) -> None:
    clock, config = VirtualClock(START), doorbell("queued")
    runtime, relays, outbox = make(tmp_path, clock, config=config)
    for press in (1.0, 2.0, 3.0):
        runtime.reading("bell", press, "test")
    assert sent(outbox) == [("hub", "start", 1.0)]  # 2 and 3 wait their turn
    clock.now += 4
    # the process dies; the new one has the running delay and the two waiting runs
    restarted, _, outbox = make(tmp_path, clock, relays, config)
    clock.now += 6
    restarted.run_due()
    assert sent(outbox) == [("hub", "done", 1.0), ("hub", "start", 2.0)]
    clock.now += 10
    restarted.run_due()
    clock.now += 10
    restarted.run_due()
    assert sent(outbox)[2:] == [
        ("hub", "done", 2.0),
        ("hub", "start", 3.0),
        ("hub", "done", 3.0),
    ]
    assert len(restarted.timers) == 0


def test_new_runs_after_a_restart_do_not_take_the_ids_of_restored_ones(tmp_path: Path) -> None:
    clock, config = VirtualClock(START), doorbell("parallel")
    runtime, relays, outbox = make(tmp_path, clock, config=config)
    runtime.reading("bell", 1.0, "test")
    clock.now += 4
    restarted, _, outbox = make(tmp_path, clock, relays, config)
    restarted.reading("bell", 2.0, "test")  # a second run while the restored one waits
    clock.now += 10
    restarted.run_due()
    assert sorted(sent(outbox)) == [
        ("hub", "done", 1.0),
        ("hub", "done", 2.0),
        ("hub", "start", 2.0),
    ]


def test_one_motion_event_saves_the_timers_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule sets a 5-minute revert and the light's max_on starts: one save, not two
    (a save is two fsyncs: the file and its directory)."""
    clock = VirtualClock(START)
    runtime, _, _ = make(tmp_path, clock)
    syncs: list[int] = []
    real = os.fsync

    def counted(fd: int) -> None:
        syncs.append(fd)
        real(fd)

    monkeypatch.setattr("gateway.files.os.fsync", counted)
    runtime.reading("motion", True, "test")
    assert runtime.timers.get(TimerKind.REVERT, "light") is not None
    assert runtime.timers.get(TimerKind.MAX_ON, "light") is not None
    assert len(syncs) == 2


QUEUED = GatewayConfig.model_validate(
    {
        "sensors": {"bell": {"kind": "virtual", "type": "number"}},
        "actuators": {"chime": {"gpio": 22}},
        "rules": [
            {
                "id": "ring",
                "mode": "queued",
                "when": {"sensor": "bell"},
                "then": [{"log": "ring {{ event.value }}"}, {"delay": "10s"}],
            }
        ],
    }
)


def test_queued_runs_are_saved_as_a_queue_and_taken_back_in_order(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, _, _ = make(tmp_path, clock, config=QUEUED)
    for value in (1.0, 2.0, 3.0):
        runtime.reading("bell", value, "test")
    saved = json.loads((tmp_path / "timers.json").read_text())
    assert [t["kind"] for t in saved["timers"]] == ["run"]  # no far-future "queued" timers
    assert [q["event"]["value"] for q in saved["queued"]] == [2.0, 3.0]
    restarted, _, _ = make(tmp_path, clock, config=QUEUED)  # a restart
    assert [r.event["value"] for r in restarted.timers.queued()] == [2.0, 3.0]
    clock.now += 10
    restarted.run_due()  # the first run ends; the second starts (and waits in its delay)
    assert [r.event["value"] for r in restarted.timers.queued()] == [3.0]


def test_a_timers_file_of_the_format_before_is_read_on_upgrade(tmp_path: Path) -> None:
    """The list written before version 2: a queued run as a timer due in the year 9000,
    a ``for`` whose trigger is only in its key, a cooldown with no index."""
    event = {"trigger": "sensor", "sensor": "bell", "value": 2.0, "time": "", "source": "t"}
    old = [
        {"kind": "revert", "key": "chime", "due": START + 60, "durable": True,
         "data": {"state": False, "by": "rule ring", "was": True}},
        {"kind": "queued", "key": "ring:7", "due": 221845392000.0, "durable": True,
         "data": {"rule": "ring", "event": event, "seq": 7}},
        {"kind": "run", "key": "ring:6", "due": START + 5, "durable": True,
         "data": {"rule": "ring", "index": 1, "event": event}},
        {"kind": "for", "key": "ring#0", "due": START + 5, "durable": True,
         "data": {"rule": "ring", "event": event}},
        {"kind": "cooldown", "key": "ring", "due": START + 5, "durable": True,
         "data": {"rule": "ring"}},
    ]  # fmt: skip
    (tmp_path / "timers.json").write_text(json.dumps(old, indent=0))
    table = TimerTable(tmp_path / "timers.json")
    assert [r.id for r in table.queued()] == ["ring:7"]
    assert sorted(str(t.kind) for t in table) == ["cooldown", "for", "revert", "run"]
    revert = table.get(TimerKind.REVERT, "chime")
    assert revert is not None
    assert revert.payload == Switch(False, "rule ring", True)
    for_timer = table.get(TimerKind.FOR, "ring#0")
    assert for_timer is not None
    assert for_timer.payload == Step("ring", 0, event)
    assert table.held({"chime"}, START) == {"chime": True}


@pytest.mark.parametrize(
    ("first", "again"), [(True, True), (21.0, 21), (21, 21.0), ("open", "open")]
)
def test_a_repeated_reading_is_no_event(
    tmp_path: Path, first: bool | float | str, again: bool | float | str
) -> None:
    """The runtime keeps each sensor's value, and is the one place repeats stop
    (a serial board that sends ``21`` after ``21.0`` has not changed anything)."""
    clock = VirtualClock(START)
    runtime, _, _ = make(tmp_path, clock)
    assert runtime.reading("motion", first, "test") is not None
    assert runtime.reading("motion", again, "test") is None


def test_a_number_after_a_binary_value_is_a_change(tmp_path: Path) -> None:
    runtime, _, _ = make(tmp_path, VirtualClock(START))
    runtime.reading("motion", True, "test")
    assert runtime.reading("motion", 1.0, "test") is not None


HOLD = GatewayConfig.model_validate(
    {
        "sensors": {"motion": {"gpio": 17, "kind": "motion"}},
        "actuators": {"light": {"gpio": 27, "max_on": "1h"}},
        "rules": [
            {
                "id": "hold",
                "when": {"sensor": "motion", "to": "on"},
                "then": [{"actuate": "light", "state": "on", "while": "motion", "for": "5m"}],
            }
        ],
    }
)


def test_a_hold_lasts_while_the_sensor_is_on_and_survives_a_restart(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, relays, _ = make(tmp_path, clock, config=HOLD)
    runtime.reading("motion", True, "test")
    assert relays.states["light"] is True
    assert runtime.timers.get(TimerKind.REVERT, "light") is None  # held: no deadline
    clock.now += 3000  # 50 minutes of continuous motion: no edge at all
    runtime.run_due()
    assert relays.states["light"] is True
    # the daemon restarts while the PIR is still high: the hold was saved
    restarted, _, _ = make(tmp_path, clock, relays, config=HOLD)
    restarted.sensors["motion"] = True
    assert "light" in restarted.timers.holds
    restarted.reading("motion", False, "test")  # the hall empties
    revert = restarted.timers.get(TimerKind.REVERT, "light")
    assert revert is not None
    assert revert.due == clock.now + 300
    clock.now += 299
    restarted.run_due()
    assert relays.states["light"] is True
    clock.now += 2
    restarted.run_due()
    assert relays.states["light"] is False
    assert restarted.timers.holds == {}


def test_max_on_still_ends_a_hold_and_a_manual_switch_takes_over(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, relays, _ = make(tmp_path, clock, config=HOLD)
    runtime.reading("motion", True, "test")
    clock.now += 3601  # the PIR is stuck high: the safety limit wins
    runtime.run_due()
    assert relays.states["light"] is False
    assert runtime.timers.holds == {}
    runtime.reading("motion", False, "test")
    runtime.reading("motion", True, "test")  # held again
    runtime.actuate("light", True, None, "token phone")  # a person switches it: no hold
    assert runtime.timers.holds == {}
    runtime.reading("motion", False, "test")
    assert runtime.timers.get(TimerKind.REVERT, "light") is None  # stays on: the phone said so


PUMPS = GatewayConfig.model_validate(
    {
        "actuators": {
            "pump_in": {"gpio": 5, "interlock": ["pump_out"]},
            "pump_out": {"gpio": 6},
            "compressor": {"gpio": 13, "min_on": "5m", "min_off": "3m", "max_on": "1h"},
        },
    }
)


def test_an_interlocked_actuator_is_refused_while_its_peer_is_on(tmp_path: Path) -> None:
    runtime, relays, _ = make(tmp_path, VirtualClock(START), config=PUMPS)
    runtime.actuate("pump_out", True, None, "test")
    assert runtime.switching.interlocked("pump_in") == "pump_out"
    assert runtime.actuate("pump_in", True, None, "rule fill") is False  # refused
    assert relays.states["pump_in"] is False
    runtime.actuate("pump_out", False, None, "test")
    assert runtime.actuate("pump_in", True, None, "rule fill") is True
    assert runtime.switching.interlocked("pump_out") == "pump_in"  # declared once, both ways


def test_min_on_and_min_off_defer_a_switch_and_never_lose_it(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, relays, _ = make(tmp_path, clock, config=PUMPS)
    runtime.actuate("compressor", True, None, "thermostat")
    clock.now += 60
    runtime.actuate("compressor", False, None, "thermostat")  # after 1 of its 5 minutes
    assert relays.states["compressor"] is True
    waiting = runtime.switching.deferred("compressor")
    assert waiting is not None
    assert waiting.due == START + 300
    clock.now = START + 300
    runtime.run_due()
    assert relays.states["compressor"] is False  # made when min_on ended
    clock.now += 60
    runtime.actuate("compressor", True, None, "thermostat")  # 1 minute into min_off
    assert relays.states["compressor"] is False
    clock.now = START + 300 + 180
    runtime.run_due()
    assert relays.states["compressor"] is True


def test_a_deferred_switch_keeps_its_for_and_counts_it_from_when_it_is_made(
    tmp_path: Path,
) -> None:
    clock = VirtualClock(START)
    runtime, relays, _ = make(tmp_path, clock, config=PUMPS)
    runtime.actuate("compressor", True, None, "thermostat")
    runtime.actuate("compressor", False, None, "thermostat")
    clock.now = START + 300
    runtime.run_due()  # off once min_on ended
    clock.now = START + 360
    runtime.actuate("compressor", True, 600.0, "rule defrost")  # 1 minute into min_off
    assert relays.states["compressor"] is False
    restarted = make(tmp_path, clock, config=PUMPS)[0]  # the deferred for is saved
    waiting = restarted.switching.deferred("compressor")
    assert waiting is not None
    assert isinstance(waiting.payload, Switch)
    assert waiting.payload.lasts == 600.0
    clock.now = START + 300 + 180
    runtime.run_due()
    assert relays.states["compressor"] is True
    back = runtime.timers.get(TimerKind.REVERT, "compressor")
    assert back is not None
    assert back.due == START + 480 + 600
    clock.now = back.due
    runtime.run_due()
    assert relays.states["compressor"] is False


def test_max_on_is_a_safety_limit_that_min_on_does_not_hold_back(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    config = GatewayConfig.model_validate(
        {"actuators": {"heater": {"gpio": 13, "min_on": "2h", "max_on": "1h"}}}
    )
    runtime, relays, _ = make(tmp_path, clock, config=config)
    runtime.actuate("heater", True, None, "test")
    clock.now += 3601
    runtime.run_due()
    assert relays.states["heater"] is False


def test_max_switches_refuses_a_flapping_rule_but_never_the_safe_state(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    config = GatewayConfig.model_validate(
        {"actuators": {"relay": {"gpio": 13, "max_switches": {"switches": 3, "per": "1m"}}}}
    )
    runtime, relays, _ = make(tmp_path, clock, config=config)
    for state in (True, False, True):
        runtime.actuate("relay", state, None, "rule flap")
    assert runtime.switching.over_limit("relay")
    assert relays.states["relay"] is True
    runtime.actuate("relay", False, None, "rule flap")  # off, the safe state: never refused
    assert relays.states["relay"] is False
    assert runtime.actuate("relay", True, None, "rule flap") is False  # refused
    clock.now += 61  # the window moves on
    assert runtime.actuate("relay", True, None, "rule flap") is True
