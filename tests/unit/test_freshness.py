"""Sensor freshness: ``stale_after``, inputs that go away, and ``unavailable`` in rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.config.models import GatewayConfig
from gateway.events import UNAVAILABLE
from gateway.rules.runtime import Runtime
from gateway.rules.timers import TimerTable
from gateway.testing import MemoryActuators, RecordingOutbox, VirtualClock

START = 1_760_000_000.0

CONFIG = GatewayConfig.model_validate(
    {
        "sensors": {
            "freezer": {"kind": "virtual", "stale_after": "10m"},
            "door": {"kind": "virtual", "type": "binary"},
        },
        "actuators": {"buzzer": {"gpio": 13}},
        "webhooks": {"phone": {"url": "http://127.0.0.1:9/"}},
        "rules": [
            {
                "id": "probe_dead",
                "when": {"sensor": "freezer", "to": "unavailable", "for": "1m"},
                "then": [
                    {
                        "webhook": "phone",
                        "event": "probe.dead",
                        "data": {
                            "text": "freezer probe {{ event.value }}, door {{ sensors.door }}"
                        },
                    }
                ],
            },
            {
                "id": "door_gone",
                "when": {"sensor": "door", "to": "unavailable"},
                "then": [{"actuate": "buzzer", "state": "on"}],
            },
        ],
    }
)


def make(
    tmp_path: Path, clock: VirtualClock, on_timers_changed: Callable[[], None] | None = None
) -> tuple[Runtime, MemoryActuators, RecordingOutbox]:
    relays = MemoryActuators({"buzzer": False}, clock)
    outbox = RecordingOutbox(clock)
    timers = TimerTable(tmp_path / "timers.json")
    runtime = Runtime(CONFIG, relays, outbox, timers, clock, on_timers_changed=on_timers_changed)
    runtime.start(startup=False)
    return runtime, relays, outbox


def advance(runtime: Runtime, clock: VirtualClock, to: float) -> None:
    """Run the runtime's timer loop on the virtual clock until ``to``."""
    while (due := runtime.next_due()) is not None and due <= to:
        clock.now = max(clock.now, due)
        runtime.run_due()
    clock.now = to


def sent(outbox: RecordingOutbox) -> list[tuple[str, Any]]:
    return [(s.event, s.data) for s in outbox.sent]


def test_a_sensor_with_no_reading_within_stale_after_is_unavailable(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, _, outbox = make(tmp_path, clock)
    runtime.reading("door", False, "test")
    runtime.reading("freezer", -18.0, "test")
    advance(runtime, clock, START + 300)
    runtime.reading("freezer", -18.0, "test")  # the same value still counts as a reading
    advance(runtime, clock, START + 300 + 599)
    assert "freezer" not in runtime.unavailable
    advance(runtime, clock, START + 300 + 600)
    assert runtime.unavailable == {"freezer"}
    assert runtime.sensors["freezer"] == UNAVAILABLE
    assert outbox.sent == []  # the rule wants a minute of it
    advance(runtime, clock, START + 300 + 660)
    assert sent(outbox) == [("probe.dead", {"text": "freezer probe unavailable, door off"})]


def test_a_reading_brings_it_back_and_cancels_a_pending_for(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, _, outbox = make(tmp_path, clock)
    advance(runtime, clock, START + 600)  # never read since the start: stale as well
    assert runtime.unavailable == {"freezer"}
    advance(runtime, clock, START + 630)
    event = runtime.reading("freezer", -18.0, "test")
    assert event is not None
    assert event.previous == UNAVAILABLE
    assert runtime.unavailable == set()
    advance(runtime, clock, START + 1000)
    assert outbox.sent == []  # back within the minute: no alarm


def test_an_input_that_goes_away_makes_its_sensors_unavailable_at_once(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, relays, _ = make(tmp_path, clock)
    runtime.reading("door", False, "test")
    runtime.lost(["door"], "serial board lost")
    assert runtime.sensors["door"] == UNAVAILABLE
    assert relays.states["buzzer"] is True  # `to: unavailable` fired
    runtime.lost(["door"], "serial board lost")  # once per episode
    runtime.reading("door", False, "test")
    assert runtime.unavailable == set()


def test_unavailable_is_a_state_any_sensor_may_be_compared_with(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "sensors:\n"
        "  door: {kind: virtual, type: binary, stale_after: 1h}\n"
        "  temp: {kind: virtual}\n"
        "rules:\n"
        "  - {id: a, when: {sensor: door, to: unavailable}, then: [{log: gone}]}\n"
        "  - {id: b, when: {sensor: temp, to: unavailable}, then: [{log: gone}],\n"
        "     if: [{sensor: door, is: unavailable}]}\n"
    )
    loaded = load_config(config)
    assert [r.id for r in loaded.config.rules] == ["a", "b"]


def test_on_off_values_read_on_and_off_in_text_and_keep_their_type_alone() -> None:
    from gateway.templates import render, render_text

    context = {"sensors": {"door": True, "window": False}}
    assert render("door {{ sensors.door }}, window {{ sensors.window }}", context) == (
        "door on, window off"
    )
    assert render("{{ sensors.door }}", context) is True  # a JSON true in a webhook body
    assert render_text("{{ sensors.window }}", context) == "off"  # a log line, a topic


def woken_runtime(tmp_path: Path, clock: VirtualClock) -> tuple[Runtime, list[float]]:
    """A runtime whose wake-ups of the timer loop are counted (when each came)."""
    wakes: list[float] = []
    runtime, _, _ = make(tmp_path, clock, lambda: wakes.append(clock.now))
    wakes.clear()
    return runtime, wakes


def test_a_sensor_back_from_unavailable_wakes_the_timer_loop(tmp_path: Path) -> None:
    """Its stale_after deadline is new: the loop, which had none for it, may wait longer."""
    clock = VirtualClock(START)
    runtime, wakes = woken_runtime(tmp_path, clock)
    runtime.reading("door", False, "test")
    advance(runtime, clock, START + 600)
    assert runtime.unavailable == {"freezer"}
    wakes.clear()
    runtime.reading("freezer", -18.0, "test")
    assert wakes == [START + 600]
    runtime.reading("freezer", -17.0, "test")  # fresh already: its deadline only moves later
    assert wakes == [START + 600]


def test_only_a_switch_that_sets_a_timer_wakes_the_timer_loop(tmp_path: Path) -> None:
    clock = VirtualClock(START)
    runtime, wakes = woken_runtime(tmp_path, clock)
    runtime.actuate("buzzer", "on", None, "test")
    runtime.actuate("buzzer", "toggle", None, "test")
    assert wakes == []  # no timer: nothing for the loop to wait for
    runtime.actuate("buzzer", "on", 5.0, "test")  # its switch-back
    assert wakes == [START]
    assert runtime.next_due() == START + 5.0
    runtime.actuate("buzzer", "off", None, "test")  # cancels it: due later, not sooner
    assert wakes == [START]
    assert runtime.next_due() == START + 600  # what is left: the freezer's stale_after
