"""Rule traces: every way a trigger can end, as the runtime hands it on, and kept on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.config.models import GatewayConfig
from gateway.config.storage import HistorySection
from gateway.history.recorder import Recorder
from gateway.rules.runtime import Runtime
from gateway.rules.timers import TimerTable
from gateway.rules.traces import Trace
from gateway.testing import MemoryActuators, RecordingOutbox, VirtualClock

START = 1_760_000_000.0


def config(rule: dict[str, Any], **extra: Any) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "sensors": {
                "door": {"kind": "virtual", "type": "binary"},
                "temp": {"kind": "virtual", "type": "number", "initial": 5},
            },
            "actuators": {
                "light": {"gpio": 27},
                "fan": {"gpio": 22, "interlock": ["light"]},
            },
            "webhooks": {"hub": {"url": "http://127.0.0.1:9/"}},
            "rules": [{"id": "r", "when": {"sensor": "door", "to": "on"}, **rule}],
            **extra,
        }
    )


class Traces:
    """An observer keeping every trace handed on (each as it was at that moment)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def sensor_changed(self, sensor: str, value: object) -> None: ...
    def actuator_switched(self, actuator: str, state: bool | float, who: str) -> None: ...

    def rule_traced(self, trace: Trace) -> None:
        self.seen.append(trace.to_json())

    @property
    def last(self) -> dict[str, Any]:
        return self.seen[-1]


def make(
    cfg: GatewayConfig, tmp_path: Path, clock: VirtualClock | None = None
) -> tuple[Runtime, Traces, VirtualClock]:
    clock = clock or VirtualClock(START)
    traces = Traces()
    return runtime_for(cfg, tmp_path, clock, traces), traces, clock


def runtime_for(cfg: GatewayConfig, tmp_path: Path, clock: VirtualClock, observer: Any) -> Runtime:
    relays = MemoryActuators(dict.fromkeys(cfg.actuators, False), clock)
    runtime = Runtime(
        cfg,
        relays,
        RecordingOutbox(clock),
        TimerTable(tmp_path / "timers.json"),
        clock,
        observers=[observer],
    )
    runtime.start(startup=False)
    return runtime


def door(runtime: Runtime, value: bool) -> None:
    runtime.reading("door", value, "test")


def test_a_run_records_its_trigger_conditions_and_each_action_outcome(tmp_path: Path) -> None:
    cfg = config(
        {
            "if": [{"sensor": "temp", "below": 10}],
            "then": [
                {"actuate": "light", "state": "on"},
                {"actuate": "light", "state": "on"},
                {"webhook": "hub", "event": "door.open", "data": {"t": "{{ sensors.temp }}"}},
                {"log": "door {{ event.value }}"},
            ],
        }
    )
    runtime, traces, _ = make(cfg, tmp_path)
    door(runtime, True)
    trace = traces.last
    assert trace["result"] == "finished"
    assert trace["trigger"] == "door=on (test)"
    assert trace["event"]["value"] is True
    assert trace["event"]["previous"] is None
    assert trace["conditions"] == [{"condition": "temp below 10 (it is 5.0)", "holds": True}]
    outcomes = [(s["action"], s["outcome"], s["ok"]) for s in trace["steps"]]
    assert outcomes[0] == ("actuate light on", "switched on", True)
    assert outcomes[1] == ("actuate light on", "already on", True)
    assert outcomes[2][0] == "webhook hub (door.open)"
    assert outcomes[2][1].startswith("queued as msg_")
    assert outcomes[3] == ("log (info)", "logged: door on", True)
    assert trace["ended"] == trace["started"]
    assert trace["duration"] == 0


def test_a_condition_that_does_not_hold_is_named_with_what_it_compared(tmp_path: Path) -> None:
    cfg = config(
        {
            "if": [
                {"sensor": "temp", "above": 0},
                {"sensor": "temp", "above": 20},
                {"time": {"after": "00:00"}},
            ],
            "then": [{"actuate": "light", "state": "on"}],
        }
    )
    runtime, traces, _ = make(cfg, tmp_path)
    door(runtime, True)
    trace = traces.last
    assert trace["result"] == "suppressed"
    assert trace["why"] == "condition 2 does not hold: temp above 20 (it is 5.0)"
    assert [c["holds"] for c in trace["conditions"]] == [True, False]  # the third not looked at
    assert trace["steps"] == []
    assert runtime.engine.suppressed[("r", "condition")] == 1


def test_cooldown_and_mode_single_say_why_the_trigger_was_ignored(tmp_path: Path) -> None:
    cfg = config({"cooldown": "1m", "then": [{"actuate": "light", "state": "on"}]})
    runtime, traces, clock = make(cfg, tmp_path)
    door(runtime, True)
    door(runtime, False)
    door(runtime, True)
    assert traces.last["result"] == "suppressed"
    assert traces.last["why"].startswith("in cooldown until ")

    cfg = config(
        {"mode": "single", "then": [{"delay": "10s"}, {"actuate": "light", "state": "on"}]}
    )
    runtime, traces, clock = make(cfg, tmp_path / "b")
    door(runtime, True)
    first = traces.last
    assert first["result"] == "waiting"
    assert first["why"].startswith("in a delay until ")
    door(runtime, False)
    door(runtime, True)
    assert traces.last["result"] == "ignored"
    assert traces.last["why"] == "still running (mode single)"
    clock.now += 10
    runtime.run_due()
    done = traces.last
    assert done["id"] == first["id"]
    assert done["result"] == "finished"
    assert [s["outcome"] for s in done["steps"]][1] == "switched on"
    assert done["duration"] == 10


def test_mode_restart_ends_the_old_run_as_cancelled_and_queued_waits(tmp_path: Path) -> None:
    cfg = config({"mode": "restart", "then": [{"delay": "10s"}, {"log": "x"}]})
    runtime, traces, _ = make(cfg, tmp_path)
    door(runtime, True)
    first = traces.last["id"]
    door(runtime, False)
    door(runtime, True)
    cancelled = next(t for t in traces.seen if t["id"] == first and t["result"] == "cancelled")
    assert cancelled["why"] == "a new trigger restarted it (mode restart)"

    cfg = config({"mode": "queued", "then": [{"delay": "10s"}, {"log": "x"}]})
    runtime, traces, clock = make(cfg, tmp_path / "q")
    door(runtime, True)
    door(runtime, False)
    door(runtime, True)
    assert traces.last["result"] == "queued"
    queued = traces.last["id"]
    clock.now += 10
    runtime.run_due()
    assert any(t["id"] == queued and t["result"] == "waiting" for t in traces.seen)


def test_a_template_error_and_a_refused_switch_show_in_the_steps(tmp_path: Path) -> None:
    cfg = config(
        {
            "then": [
                {"actuate": "light", "state": "on"},
                {"actuate": "fan", "state": "on"},
                {"log": "{{ sensors.temp.nothing.deeper }}"},
            ]
        }
    )
    runtime, traces, _ = make(cfg, tmp_path)
    door(runtime, True)
    trace = traces.last
    steps = trace["steps"]
    assert steps[1]["outcome"] == "refused: fan is interlocked with light, which is on"
    assert not steps[2]["ok"]
    assert steps[2]["outcome"].startswith("skipped: ")
    assert trace["result"] == "error"
    assert trace["why"].startswith("log (info): skipped: ")


def test_run_now_skips_conditions_and_names_who_asked(tmp_path: Path) -> None:
    cfg = config(
        {"if": [{"sensor": "temp", "above": 100}], "then": [{"actuate": "light", "state": "on"}]}
    )
    runtime, traces, _ = make(cfg, tmp_path)
    runtime.run_now("r", "token ops from 127.0.0.1")
    trace = traces.last
    assert trace["result"] == "finished"
    assert trace["who"] == "token ops from 127.0.0.1"
    assert trace["trigger"] == "run now by token ops from 127.0.0.1"
    assert trace["conditions"] == []


def test_a_disabled_rule_does_not_run(tmp_path: Path) -> None:
    runtime, traces, _ = make(config({"then": [{"log": "x"}]}), tmp_path)
    runtime.engine.disabled.add("r")
    door(runtime, True)
    assert traces.seen == []


def test_traces_are_kept_per_rule_bounded_and_read_back_after_a_restart(tmp_path: Path) -> None:
    cfg = config({"then": [{"delay": "10s"}, {"log": "x"}]})
    section = HistorySection(traces=3)
    clock = VirtualClock(START)
    path = tmp_path / "history.db"

    async def scenario() -> None:
        recorder = Recorder(path, section, ["r"], clock=clock)
        runtime = runtime_for(cfg, tmp_path, clock, recorder)
        for _ in range(5):
            door(runtime, True)
            door(runtime, False)
            clock.now += 11
            runtime.run_due()
        door(runtime, True)  # the sixth waits in its delay when the gateway stops
        await recorder.commit()
        assert [t.result for t in recorder.rule_traces("r")] == ["waiting", "finished", "finished"]
        recorder.close()

        again = Recorder(path, section, ["r"], clock=clock)  # a restart
        kept = again.rule_traces("r")
        assert [t.result for t in kept] == ["waiting", "finished", "finished"]
        waiting = kept[0]
        runtime = runtime_for(cfg, tmp_path, clock, again)
        clock.now += 11
        runtime.run_due()
        resumed = again.rule_traces("r")[0]
        assert resumed.id == waiting.id
        assert resumed.result == "finished"
        assert [s.action for s in resumed.steps] == ["delay 10s", "log (info)"]  # one trace
        assert resumed.started == waiting.started
        await again.commit()
        again.close()

    asyncio.run(scenario())
