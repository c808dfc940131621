"""The daemon's log handler: one write per turn of the event loop, in order."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Iterator

import pytest

from gateway.logs import TurnHandler


class Recording(io.StringIO):
    """A stream that remembers each write it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, Recording, TurnHandler]]:
    stream = Recording()
    handler = TurnHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("test_logs.turns")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream, handler
    logger.handlers[:] = []


async def test_the_lines_of_one_turn_are_one_write_made_as_the_turn_ends(
    logged: tuple[logging.Logger, Recording, TurnHandler],
) -> None:
    logger, stream, _ = logged
    for n in range(3):
        logger.info("line %d", n)
    assert stream.writes == []  # still this turn
    await asyncio.sleep(0)
    assert stream.writes == ["line 0\nline 1\nline 2\n"]
    logger.info("next")
    await asyncio.sleep(0)
    assert stream.writes[-1] == "next\n"


async def test_a_line_from_another_thread_comes_after_those_waiting(
    logged: tuple[logging.Logger, Recording, TurnHandler],
) -> None:
    logger, stream, _ = logged
    logger.info("first, in the loop")
    thread = threading.Thread(target=logger.info, args=("second, from a thread",))
    thread.start()
    thread.join()
    assert stream.getvalue() == "first, in the loop\nsecond, from a thread\n"
    await asyncio.sleep(0)
    assert stream.getvalue() == "first, in the loop\nsecond, from a thread\n"


def test_without_a_loop_a_line_is_written_at_once(
    logged: tuple[logging.Logger, Recording, TurnHandler],
) -> None:
    logger, stream, _ = logged
    logger.warning("no loop")
    assert stream.writes == ["no loop\n"]


def _stopped_loop_after(logger: logging.Logger, message: str) -> None:
    """A loop that stops (and closes) in the turn ``message`` was logged in."""
    loop = asyncio.new_event_loop()

    async def log_and_stop() -> None:
        logger.info(message)
        loop.stop()  # before the turn's end

    task = loop.create_task(log_and_stop())
    loop.run_forever()
    assert task.done()
    loop.close()


def test_flush_writes_what_a_stopped_loop_left_waiting(
    logged: tuple[logging.Logger, Recording, TurnHandler],
) -> None:
    logger, stream, handler = logged
    _stopped_loop_after(logger, "as the loop stops")
    assert stream.getvalue() == ""
    handler.flush()  # logging.shutdown does this at exit
    assert stream.getvalue() == "as the loop stops\n"


def test_a_stopped_loop_does_not_hold_back_the_next_one(
    logged: tuple[logging.Logger, Recording, TurnHandler],
) -> None:
    logger, stream, _ = logged
    _stopped_loop_after(logger, "as the loop stops")

    async def again() -> None:
        logger.info("in the next loop")
        await asyncio.sleep(0)

    asyncio.run(again())
    assert stream.getvalue() == "as the loop stops\nin the next loop\n"
