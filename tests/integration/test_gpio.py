"""GPIO through gpiozero's MockFactory: pins driven as wired hardware would drive them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from gateway.config.models import GpioSensor
from gateway.control import Control
from gateway.inputs.gpio import GpioInput
from tests.conftest import (
    Receiver,
    demo_like_config,
    edited,
    free_port,
    running,
    value_of,
    wait_until,
)


@pytest.fixture
async def gateway(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Control]:
    config = demo_like_config(tmp_path, free_port(), receiver.url)
    async with running(config) as gw:
        yield gw


async def test_driving_gpio17_high_switches_gpio27_for_the_rule_duration(
    gateway: Control, receiver: Receiver
) -> None:
    motion = gateway.live.devices.factory.pin(17)
    light = gateway.live.devices.factory.pin(27)
    assert light.state == 1  # active-low relay board: off means the pin is high
    motion.drive_high()
    await wait_until(lambda: value_of(light.state), lambda state: state == 0)  # relay on
    assert gateway.actuators()["hallway_light"].state == "on"
    await wait_until(
        lambda: value_of(light.state), lambda state: state == 1, timeout=3
    )  # off again after `for: 1s`
    [webhook] = await receiver.wait_for(1)
    assert webhook.json["type"] == "motion.detected"
    assert webhook.json["data"] == {"where": "hallway", "value": True}


async def test_a_timed_filter_lets_a_held_edge_through_on_the_daemons_clock(
    tmp_path: Path, receiver: Receiver
) -> None:
    """``delayed_on``: the light follows the PIR only once it has been high 0.3 s."""
    config = demo_like_config(tmp_path, free_port(), receiver.url)
    config.write_text(
        edited(
            config.read_text(),
            (
                "{gpio: 17, kind: motion}",
                "{gpio: 17, kind: motion, filters: [{delayed_on: 300ms}]}",
            ),
        )
    )
    async with running(config) as gw:
        motion = gw.live.devices.factory.pin(17)
        light = gw.live.devices.factory.pin(27)
        motion.drive_high()
        motion.drive_low()  # a blip: dropped
        await asyncio.sleep(0.5)
        assert light.state == 1
        motion.drive_high()
        await asyncio.sleep(0.1)
        assert light.state == 1  # still held back
        await wait_until(lambda: value_of(light.state), lambda state: state == 0)
        assert gw.sensors()["hallway_motion"].value is True


async def test_stopping_leaves_actuators_in_their_safe_state(tmp_path: Path) -> None:
    config = demo_like_config(tmp_path, free_port(), "http://127.0.0.1:9/")
    async with running(config) as gw:
        light = gw.live.devices.factory.pin(27)
        gw.switch("hallway_light", True, None, "test")
        assert light.state == 0  # on (active low)
    # initial off (high), on (low), then off again before the pins were released
    assert [s.state for s in light.states][1:4] == [1, 0, 1]


class Edges:
    def __init__(self) -> None:
        self.values: list[bool] = []

    def __call__(self, name: str, value: bool) -> None:
        self.values.append(value)


async def test_a_bouncing_button_gives_one_press_and_one_release() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    edges = Edges()
    config = GpioSensor(gpio=5, kind="button", bounce="50ms")
    button = GpioInput("doorbell", config, factory, asyncio.get_running_loop(), edges)
    pin = factory.pin(5)
    assert pin.state is True  # pulled up, not pressed
    for _ in range(5):  # contact bounce on press: ends pressed (low)
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()
    await asyncio.sleep(0.12)
    assert edges.values == [True]
    for _ in range(4):  # bounce on release: ends released
        pin.drive_high()
        pin.drive_low()
    pin.drive_high()
    await asyncio.sleep(0.12)
    assert edges.values == [True, False]
    button.close()


async def test_a_change_hidden_inside_the_bounce_window_is_not_lost() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    edges = Edges()
    sensor = GpioInput(
        "door", GpioSensor(gpio=6, bounce="50ms"), factory, asyncio.get_running_loop(), edges
    )
    pin = factory.pin(6)
    pin.drive_high()
    pin.drive_low()  # a real short pulse shorter than the window
    await asyncio.sleep(0.12)
    assert edges.values == [True, False]
    sensor.close()


async def test_a_pwm_output_takes_levels_and_a_timed_level_reverts(tmp_path: Path) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    config.write_text(
        edited(
            config.read_text(),
            ("actuators:\n", "actuators:\n  fan: {gpio: 18, kind: pwm}\n"),
        )
    )
    async with running(config) as gw:
        pin = gw.live.devices.factory.pin(18)
        assert gw.switch("fan", 0.25, None, "test").level == 0.25
        assert pin.state == pytest.approx(0.25)
        assert gw.switch("fan", "toggle", None, "test").level == 0.0
        assert gw.switch("fan", True, 0.2, "test").level == 1.0
        await wait_until(lambda: value_of(pin.state), lambda state: state == 0, timeout=3)


async def test_a_timed_pwm_level_is_restored_at_its_level_after_a_restart(tmp_path: Path) -> None:
    port = free_port()
    config = demo_like_config(tmp_path, port, "http://127.0.0.1:9/")
    config.write_text(
        edited(
            config.read_text(),
            ("actuators:\n", "actuators:\n  fan: {gpio: 18, kind: pwm}\n"),
        )
    )
    async with running(config) as gw:
        gw.switch("fan", 0.4, 60, "test")  # 40 % for a minute
    # a clean stop switches everything off; the saved switch-back keeps the minute
    async with running(config) as gw:
        assert gw.actuators()["fan"].level == pytest.approx(0.4)
        assert gw.live.devices.factory.pin(18).state == pytest.approx(0.4)
        assert gw.actuators()["fan"].until is not None
