"""Alerts from a running gateway to a real receiver: a sensor gone stale and back, a
dead letter, each once, as a notification with a recovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway import alerts
from tests.conftest import Receiver, free_port, started, value_of, wait_until, write_config


async def test_a_stale_sensor_and_a_dead_letter_are_each_alerted_once_then_recovered(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts, "CHECK_EVERY", 0.1)
    hub = Receiver(free_port())  # answers 500: its webhook dies after max_age
    hub.responses = [(500, {})] * 100
    await hub.start()
    config = write_config(
        tmp_path,
        f"""
        gateway: {{name: shed, state_dir: {tmp_path / "state"}, simulate: true}}
        sensors:
          freezer: {{kind: virtual, stale_after: 1s}}
        webhooks:
          ops: {{url: "http://127.0.0.1:{receiver.port}/ops", sign: none, format: json,
                 body: {{event: "{{{{ event }}}}", message: "{{{{ data.message }}}}"}}}}
          hub: {{url: "http://127.0.0.1:{hub.port}/", retry: [100ms], max_age: 300ms}}
        alerts: {{notify: ops, min_interval: 0s}}
        server: {{listen: 127.0.0.1:{free_port()}}}
        rules:
          - id: log
            when: {{sensor: freezer}}
            then: [{{webhook: hub, event: freezer.warm}}]
        """,
    )

    def said() -> list[dict[str, str]]:
        return [json.loads(r.body) for r in receiver.received]

    async with started(config) as gw:
        control = gw.control
        assert control is not None
        await control.set_sensor("freezer", 5.0, "test")  # its webhook will die
        await wait_until(
            lambda: value_of([m["message"] for m in said()]),
            lambda got: (
                "sensor freezer is unavailable" in got
                and "1 webhook(s) to hub gave up (dead letters)" in got
            ),
            timeout=15,
        )
        await control.set_sensor("freezer", 4.0, "test")
        await wait_until(
            lambda: value_of([m["message"] for m in said()]),
            lambda got: "sensor freezer is reading again" in got,
        )
    await hub.stop()
    messages = [(m["event"], m["message"]) for m in said()]
    assert messages.count(("gateway.alert", "sensor freezer is unavailable")) == 1
    assert ("gateway.recovered", "sensor freezer is reading again") in messages
    assert messages.count(("gateway.alert", "1 webhook(s) to hub gave up (dead letters)")) == 1
