"""``gateway test``: rule scenarios on a virtual clock, against the real config.

A scenario file is a list of scenarios. Each one starts the config's rules
at ``start`` (local time), feeds ``given`` readings at their times, and
checks ``expect`` and ``expect_not``. No hardware, no network, no waiting: a
24-hour scenario takes milliseconds.

``actuator`` expectations check the state at ``at``; ``webhook``
expectations match a webhook queued within ±1 s of ``at`` (``data`` as a
subset); without ``at``, ``expect_not`` means "never during the scenario".
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from gateway.config import LoadedConfig
from gateway.config.loader import load_yaml, locate
from gateway.config.models import VirtualSensor
from gateway.errors import ConfigError, ConfigProblem
from gateway.events import HookReceived, MqttReceived
from gateway.hub.hub import Hub
from gateway.localtime import local_zone
from gateway.rules.runtime import Runtime
from gateway.rules.scenario_models import WINDOW, Expectation, Scenario, clock_text, shown
from gateway.rules.timers import TimerTable
from gateway.testing import (
    MemoryActuators,
    RecordingOutbox,
    Sent,
    Traced,
    TraceLog,
    VirtualClock,
)

ScenarioFile: TypeAdapter[list[Scenario]] = TypeAdapter(
    Annotated[list[Scenario], Field(min_length=1)]
)


@dataclass
class Result:
    name: str
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def load_scenarios(path: str | os.PathLike[str]) -> list[Scenario]:
    """Read a scenario file; problems are a :class:`ConfigError` with positions."""
    loaded = load_yaml(path)
    if loaded.problems:
        raise ConfigError(loaded.problems)
    try:
        return ScenarioFile.validate_python(loaded.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False):
            located = locate(loaded.data, tuple(error["loc"]), loaded.file)
            message = error["msg"].removeprefix("Value error, ")
            where = located.dotted
            problems.append(located.position.problem(f"{where}: {message}" if where else message))
        raise ConfigError(problems) from None


def run_scenario(loaded: LoadedConfig, scenario: Scenario) -> Result:
    """Play one scenario against the config's rules on a virtual clock."""
    config = loaded.config
    tz = local_zone(scenario.timezone or config.gateway.timezone)
    start_local = dt.datetime.fromisoformat(scenario.start)
    if start_local.tzinfo is None:
        start_local = start_local.replace(tzinfo=tz)
    start = start_local.timestamp()
    clock = VirtualClock(start, start)
    initial = {
        name: (float(a.initial) if getattr(a, "kind", "") == "pwm" else a.initial)
        for name, a in config.actuators.items()
    }
    actuators = MemoryActuators(initial, clock)
    recorder = RecordingOutbox(clock)
    hub = Hub(config, recorder)  # state topics and commands, as the daemon has them
    traces = TraceLog(clock)
    runtime = Runtime(
        config,
        actuators,
        recorder,
        TimerTable(None),
        clock,
        tz,
        recorder,
        observers=[hub, traces],
    )
    hub.attach(runtime)
    failures = [
        f"given #{i + 1}: unknown sensor {g.sensor!r}"
        for i, g in enumerate(scenario.given)
        if g.sensor is not None and g.sensor not in config.sensors
    ]
    failures += [
        f"given #{i + 1}: unknown hook {g.hook!r}"
        for i, g in enumerate(scenario.given)
        if g.hook is not None and g.hook not in config.server.hooks
    ]
    failures += [
        f"expect: unknown {'actuator' if e.actuator else 'webhook'} {e.actuator or e.webhook!r}"
        for e in [*scenario.expect, *scenario.expect_not]
        if (e.actuator and e.actuator not in config.actuators)
        or (e.webhook and e.webhook not in config.webhooks)
    ]
    rules = {rule.id for rule in config.rules}
    failures += [
        f"expect: unknown rule {e.rule!r}"
        for e in [*scenario.expect, *scenario.expect_not]
        if e.rule is not None and e.rule not in rules
    ]
    if failures:
        return Result(scenario.name, failures)
    runtime.start()

    def advance(to: float) -> None:
        while (due := runtime.next_due()) is not None and due <= start + to:
            clock.now = max(clock.now, due)
            runtime.run_due()
        clock.now = max(clock.now, start + to)

    checks: list[tuple[float, Expectation, bool]] = sorted(  # (at, what, expected not)
        [
            *((e.at or 0.0, e, False) for e in scenario.expect if e.actuator is not None),
            *((e.at or 0.0, e, True) for e in scenario.expect_not if e.actuator is not None),
        ],
        key=lambda item: item[0],
    )
    givens = sorted(scenario.given, key=lambda g: g.at)
    moments = sorted({g.at for g in givens} | {t for t, _, _ in checks})
    for moment in moments:
        advance(moment)
        for n, given in enumerate(g for g in givens if g.at == moment):
            if given.sensor is not None:
                sensor = config.sensors[given.sensor]
                runtime.reading(given.sensor, _reading(sensor, given.value), "scenario")
            elif given.hook is not None:
                event = HookReceived(
                    given.hook,
                    f"evt_scenario_{moment:g}_{n}",
                    given.payload,
                    given.query,
                    given.headers,
                    clock.now,
                    "scenario",
                )
                runtime.handle(event)
            elif given.mqtt is not None:
                payload = given.payload
                actuator = hub.command_topics().get(given.mqtt)
                if actuator is not None:
                    raw = payload if isinstance(payload, str) else json.dumps(payload)
                    hub.command(actuator, raw.encode(), given.mqtt)
                else:
                    runtime.handle(MqttReceived(given.mqtt, payload, clock.now))
        for _, expectation, negated in (c for c in checks if c[0] == moment):
            assert expectation.actuator is not None
            actual = actuators.get(expectation.actuator)
            if _same(actual, expectation.state) == negated:
                failures.append(
                    f"expected {'not ' if negated else ''}{expectation.describe()}, "
                    f"but it was {shown(actual)}" + _history_hint(actuators, expectation.actuator)
                )
    every_at = [e.at for e in [*scenario.expect, *scenario.expect_not] if e.at is not None]
    last = max([*moments, *every_at], default=0.0)
    advance(last + WINDOW + 0.001)
    for expectation in [e for e in scenario.expect if e.rule is not None]:
        if not _traced(traces.traced, expectation, start):
            seen = [t for t in traces.traced if t.rule == expectation.rule][:5]
            listed = "; ".join(
                f"{t.result} at {clock_text(t.time - start)}" + (f" ({t.why})" if t.why else "")
                for t in seen
            )
            failures.append(f"expected {expectation.describe()}, but: {listed or 'no trace'}")
    for expectation in [e for e in scenario.expect_not if e.rule is not None]:
        if hit := _traced(traces.traced, expectation, start):
            failures.append(
                f"expected no {expectation.describe().removeprefix('a ')}, but: {hit.result} at "
                f"{clock_text(hit.time - start)}"
            )
    for expectation in scenario.expect:
        if expectation.webhook is not None and not _matches(recorder.sent, expectation):
            failures.append(f"expected {expectation.describe()}, but " + _sent_hint(recorder))
        if expectation.mqtt is not None and not _published(recorder.published, expectation):
            listed = (
                "; ".join(
                    f"{p.endpoint} {p.data} at {clock_text(p.time)}" for p in recorder.published[:5]
                )
                or "nothing was published"
            )
            failures.append(f"expected {expectation.describe()}, but: {listed}")
    for expectation in scenario.expect_not:
        if expectation.actuator is not None or expectation.rule is not None:
            continue  # checked at its moment, or above
        elif expectation.mqtt is not None:
            if found := _published(recorder.published, expectation):
                failures.append(
                    f"expected no {expectation.describe()}, but one was published at "
                    f"{clock_text(found.time)}: {found.data}"
                )
        elif found := _matches(recorder.sent, expectation):
            failures.append(
                f"expected no {expectation.describe()}, but one was sent at "
                f"{clock_text(found.time)} with {found.data}"
            )
    return Result(scenario.name, failures)


def _reading(sensor: Any, value: Any) -> Any:
    if sensor.binary:
        return bool(value)
    if isinstance(sensor, VirtualSensor) and sensor.type == "text":
        return str(value)
    return value


def _traced(traced: list[Traced], e: Expectation, start: float) -> Traced | None:
    """A trace of the rule with the result and condition asked for, within the window."""
    for t in traced:
        if t.rule != e.rule or (e.result is not None and t.result != e.result):
            continue
        if e.condition is not None and t.condition != e.condition:
            continue
        if e.at is None or abs(t.time - start - e.at) <= WINDOW:
            return t
    return None


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(actual) == bool(expected) and isinstance(expected, bool)
    return bool(actual == expected)


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    return bool(expected == actual)


def _matches(sent: list[Sent], e: Expectation) -> Sent | None:
    for item in sent:
        if item.endpoint != e.webhook:
            continue
        if e.event is not None and item.event != e.event:
            continue
        if e.at is not None and abs(item.time - e.at) > WINDOW:
            continue
        if e.data is not None and not _subset(e.data, item.data):
            continue
        return item
    return None


def _published(published: list[Sent], e: Expectation) -> Sent | None:
    for item in published:
        if item.endpoint != e.mqtt:
            continue
        if e.at is not None and abs(item.time - e.at) > WINDOW:
            continue
        if e.payload is not None and not _subset(e.payload, item.data):
            continue
        return item
    return None


def _sent_hint(recorder: RecordingOutbox) -> str:
    if not recorder.sent:
        return "no webhook was sent at all"
    shown = "; ".join(
        f"{s.endpoint} {s.event} at {clock_text(s.time)} with {s.data}" for s in recorder.sent[:5]
    )
    more = f" (and {len(recorder.sent) - 5} more)" if len(recorder.sent) > 5 else ""
    return f"these were sent: {shown}{more}"


def _history_hint(actuators: MemoryActuators, name: str) -> str:
    switches = [
        f"{shown(state)} at {clock_text(t)}" for t, n, state in actuators.history if n == name
    ]
    if not switches:
        return " (it never switched)"
    return f" (it switched {', '.join(switches[:6])}{' ...' if len(switches) > 6 else ''})"


def run_files(
    loaded: LoadedConfig, files: Iterable[Path]
) -> tuple[list[Result], list[ConfigProblem]]:
    """Every scenario of every file; unreadable files become problems."""
    results: list[Result] = []
    problems: list[ConfigProblem] = []
    for path in files:
        try:
            scenarios = load_scenarios(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        results.extend(run_scenario(loaded, s) for s in scenarios)
    return results, problems
