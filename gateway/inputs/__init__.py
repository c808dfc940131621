"""Inputs: where the physical world becomes sensor readings."""

from __future__ import annotations

from collections.abc import Callable

OnLost = Callable[[list[str], str], None]
"""Told when an input goes away: the sensors it feeds, and why (they become
``unavailable`` until they read again)."""


def nothing_lost(sensors: list[str], why: str) -> None:
    """The default :data:`OnLost`: nobody is told."""
