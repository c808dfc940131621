"""A serial sensor board on a real pty: lines, garbage, unplug and replug."""

from __future__ import annotations

import asyncio
import contextlib
import os

from gateway.config.connections import SerialPort
from gateway.events import Value
from gateway.inputs.serial import SerialInput
from tests.conftest import Board


class Readings:
    def __init__(self) -> None:
        self.values: list[tuple[str, Value]] = []

    def __call__(self, sensor: str, value: Value) -> None:
        self.values.append((sensor, value))

    async def wait(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.values) < count:
                await asyncio.sleep(0.01)


async def connected(port: SerialInput) -> None:
    async with asyncio.timeout(10):
        while port.state != "connected":
            await asyncio.sleep(0.01)


async def test_json_lines_split_garbage_and_overlong(board: Board) -> None:
    readings = Readings()
    config = SerialPort(port=str(board.link), format="json", max_line=64)
    port = SerialInput("weather", config, {"porch_temp": "temp_c", "porch_hum": "hum"}, readings)
    task = asyncio.create_task(port.run())
    try:
        await connected(port)
        board.send(b'{"temp_c": 21')
        await asyncio.sleep(0.05)
        board.send(b'.5, "hum": 40}\r\n')
        board.send(b"garbage!!\n" + b"x" * 200 + b"\n")
        board.send(b'{"temp_c": 22}\n')
        await readings.wait(3)
        assert readings.values == [("porch_temp", 21.5), ("porch_hum", 40), ("porch_temp", 22)]
        assert port.malformed == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_unplug_and_replug_reconnects_and_reads_again(board: Board) -> None:
    readings = Readings()
    config = SerialPort(port=str(board.link), format="kv")
    lost: list[tuple[list[str], str]] = []
    port = SerialInput("weather", config, {"t": "temp"}, readings, lambda s, w: lost.append((s, w)))
    task = asyncio.create_task(port.run())
    try:
        await connected(port)
        board.send(b"temp=1\n")
        await readings.wait(1)
        assert lost == []
        board.unplug()
        async with asyncio.timeout(5):
            while port.state == "connected":
                await asyncio.sleep(0.01)
        assert lost == [(["t"], "serial weather lost")]  # its sensors: unavailable at once
        board.plug()  # the by-id symlink now points at the new device
        await connected(port)
        board.send(b"temp=2\n")
        await readings.wait(2)
        assert readings.values == [("t", 1), ("t", 2)]
        port.write("LED on\n")
        assert os.read(board.master, 100) == b"LED on\n"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
