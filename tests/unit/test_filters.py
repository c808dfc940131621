"""Sensor filters, each on its own and in a chain, and through a rule scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from gateway.config import load_config
from gateway.config.filters import Filter
from gateway.errors import ConfigError
from gateway.events import Value
from gateway.rules.filters import FilterChain
from tests.conftest import scenario_outcomes

FILTERS: TypeAdapter[list[Filter]] = TypeAdapter(list[Filter])


def run(filters: list[dict[str, Any]], readings: list[tuple[float, Value]]) -> list[Value | None]:
    chain = FilterChain(FILTERS.validate_python(filters))
    return [chain(value, at) for at, value in readings]


def each(*values: Value) -> list[tuple[float, Value]]:
    return [(float(i), v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("filters", "readings", "expected"),
    [
        ([{"offset": -0.5}], each(21.0), [20.5]),
        ([{"multiply": 1.8}, {"offset": 32}], each(100.0), [212.0]),
        # a probe that reads 1.0 in ice water and 99.0 in boiling water
        ([{"calibrate": [[1.0, 0.0], [99.0, 100.0]]}, {"round": 2}], each(50.0), [50.0]),
        ([{"round": 1}], each(21.26, 21.24), [21.3, 21.2]),
        ([{"clamp": {"min": 0, "max": 100}}], each(-3.0, 50.0, 130.0), [0.0, 50.0, 100.0]),
        ([{"clamp": {"max": 10}}], each(-3.0, 30.0), [-3.0, 10.0]),
        ([{"median": 3}], each(20.0, 99.0, 21.0, 22.0), [20.0, 59.5, 21.0, 22.0]),
        ([{"average": 2}], each(20.0, 22.0, 30.0), [20.0, 21.0, 26.0]),
        ([{"exponential": 0.5}], each(20.0, 30.0, 30.0), [20.0, 25.0, 27.5]),
        ([{"delta": 0.5}], each(20.0, 20.2, 20.6, 20.3), [20.0, None, 20.6, None]),
        (
            [{"throttle": "30s"}],
            [(0.0, 1.0), (10.0, 2.0), (31.0, 3.0), (40.0, 4.0)],
            [1.0, None, 3.0, None],
        ),
        ([{"invert": True}], each(True, False), [False, True]),
        ([{"offset": 1}], each("text"), ["text"]),
    ],
)
def test_each_filter(
    filters: list[dict[str, Any]], readings: list[tuple[float, Value]], expected: list[Any]
) -> None:
    assert run(filters, readings) == expected


def test_a_spike_is_removed_before_smoothing_and_small_changes_are_dropped() -> None:
    """The order matters: median, then exponential, then round and delta."""
    chain: list[dict[str, Any]] = [
        {"median": 3},
        {"exponential": 0.5},
        {"round": 1},
        {"delta": 0.2},
    ]
    got = run(chain, each(20.0, 20.0, 85.0, 20.1, 20.0))
    assert got == [20.0, None, None, None, None]  # the 85 °C spike never shows


def timed(filters: list[dict[str, Any]], readings: list[tuple[float, bool]]) -> list[str]:
    """What passes, and when: each reading in turn, and each held one let through
    when it is due (as the runtime's timer loop does)."""
    chain = FilterChain(FILTERS.validate_python(filters))
    out: list[str] = []
    for at, value in [*readings, (10_000.0, None)]:
        while (due := chain.due()) is not None and due <= at:
            out += [f"{v} at {due:g}" for v in chain.release(due)]
        if value is not None and (passed := chain(value, at)) is not None:
            out.append(f"{passed} at {at:g}")
    return out


@pytest.mark.parametrize(
    ("filters", "readings", "expected"),
    [
        # on must last 2 s: a 1 s blip never passes, a real one passes 2 s late; off at once
        (
            [{"delayed_on": "2s"}],
            [(0, True), (1, False), (5, True), (9, False)],
            ["False at 1", "True at 7", "False at 9"],
        ),
        # a PIR that drops out for a moment: off passes only after 3 s of off
        (
            [{"delayed_off": "3s"}],
            [(0, True), (10, False), (11, True), (20, False)],
            ["True at 0", "True at 11", "False at 23"],
        ),
        # a bouncing contact: the first change at once, then quiet for 1 s; the last
        # state passes once it has settled, if it differs
        (
            [{"settle": "1s"}],
            [(0, True), (0.2, False), (0.4, True), (0.6, False), (5, True), (5.5, False)],
            ["True at 0", "False at 1.6", "True at 5", "False at 6.5"],
        ),
        (
            [{"settle": "1s"}],
            [(0, True), (0.3, False), (0.5, True)],
            ["True at 0"],  # it settled where it was: nothing more
        ),
        # timed filters pass their reading on through the rest of the chain
        ([{"delayed_on": "2s"}, {"invert": True}], [(0, True)], ["False at 2"]),
    ],
)
def test_timed_on_off_filters(
    filters: list[dict[str, Any]], readings: list[tuple[float, bool]], expected: list[str]
) -> None:
    assert timed(filters, readings) == expected


@pytest.mark.parametrize(
    ("sensor", "message"),
    [
        ("{gpio: 17, kind: motion, filters: [{offset: 1}]}", "this filter is for numbers"),
        ("{kind: virtual, filters: [{invert: true}]}", "invert is for on/off sensors"),
        ("{kind: virtual, filters: [{delayed_off: 5s}]}", "delayed_off is for on/off sensors"),
        ("{kind: virtual, filters: [{calibrate: [[1, 0], [1, 5]]}]}", "two different raw"),
        ("{kind: virtual, filters: [{smooth: 3}]}", "a filter is one of"),
    ],
)
def test_a_filter_that_cannot_apply_is_a_config_error(
    tmp_path: Path, sensor: str, message: str
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"sensors:\n  s: {sensor}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(message in p.message for p in caught.value.problems), caught.value.problems


def test_filters_run_before_the_rules_on_the_virtual_clock(tmp_path: Path) -> None:
    outcomes = scenario_outcomes(
        tmp_path,
        "sensors:\n"
        "  freezer: {kind: virtual, filters: [{median: 3}, {round: 1}]}\n"
        "webhooks: {phone: {url: 'http://127.0.0.1:9/'}}\n"
        "rules:\n"
        "  - {id: warm, when: {sensor: freezer, above: -10},\n"
        "     then: [{webhook: phone, event: freezer.warm}]}\n",
        "- name: one 85 degree spike from a loose probe is not an alarm\n"
        "  given:\n"
        "    - {at: 0s, sensor: freezer, value: -18.04}\n"
        "    - {at: 10s, sensor: freezer, value: -18.01}\n"
        "    - {at: 20s, sensor: freezer, value: 85}\n"
        "    - {at: 30s, sensor: freezer, value: -18.02}\n"
        "  expect_not:\n"
        "    - {webhook: phone}\n"
        "- name: a freezer that really warms is\n"
        "  given:\n"
        "    - {at: 0s, sensor: freezer, value: -18}\n"
        "    - {at: 10s, sensor: freezer, value: -5}\n"
        "    - {at: 20s, sensor: freezer, value: -4}\n"
        "  expect:\n"
        "    - {at: 20s, webhook: phone, event: freezer.warm}\n",
    )
    assert [(n, p, f) for n, p, f in outcomes] == [
        ("one 85 degree spike from a loose probe is not an alarm", True, []),
        ("a freezer that really warms is", True, []),
    ]


def test_a_timed_filter_lets_its_reading_through_on_the_virtual_clock(tmp_path: Path) -> None:
    """A door contact that must stay open 5 s before the rule hears of it."""
    outcomes = scenario_outcomes(
        tmp_path,
        "sensors:\n"
        "  door: {kind: virtual, type: binary, filters: [{delayed_on: 5s}]}\n"
        "actuators:\n"
        "  buzzer: {gpio: 13}\n"
        "rules:\n"
        "  - {id: open, when: {sensor: door, to: on}, then: [{actuate: buzzer, state: on}]}\n",
        "- name: a door opened for a moment does not sound\n"
        "  given:\n"
        "    - {at: 0s, sensor: door, value: on}\n"
        "    - {at: 3s, sensor: door, value: off}\n"
        "  expect:\n"
        "    - {at: 20s, actuator: buzzer, state: off}\n"
        "- name: a door left open does, 5 s after it opened\n"
        "  given:\n"
        "    - {at: 0s, sensor: door, value: on}\n"
        "  expect:\n"
        "    - {at: 4s, actuator: buzzer, state: off}\n"
        "    - {at: 5s, actuator: buzzer, state: on}\n",
    )
    assert [(n, p, f) for n, p, f in outcomes] == [
        ("a door opened for a moment does not sound", True, []),
        ("a door left open does, 5 s after it opened", True, []),
    ]
