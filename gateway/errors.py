"""The exceptions the gateway raises, one base class for all of them.

Each subclass also inherits the builtin it resembles (as gpiozero does), so
callers that only know Python's own exceptions still catch them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in a config file, with where it is."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class ConfigError(GatewayError, ValueError):
    """The config is invalid; ``problems`` lists every mistake found."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line, p.column, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class HardwareError(GatewayError, RuntimeError):
    """A pin, port or pin factory could not be set up."""


class OutboxError(GatewayError, RuntimeError):
    """The outbox database could not be read or written."""


class NotFound(GatewayError, KeyError):
    """No sensor, actuator, message, hook or endpoint of that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Refused(GatewayError, ValueError):
    """Understood, but it cannot be done (setting a real GPIO input, say)."""


class InvalidValue(GatewayError, ValueError):
    """A value that is not one the target takes (a word for a number, ``for`` past ``max_on``)."""
