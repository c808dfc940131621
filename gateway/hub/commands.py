"""Commands on ``BASE/ACTUATOR/set``: the same request as the HTTP API's.

A payload is ``on``, ``off``, ``toggle`` (any case), a level ``0.4``, or
JSON ``{"state": "on", "for": "30s"}``: the body of
``POST /api/v1/actuators/{id}``, validated by the same model.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from gateway.api.models import ActuatorWrite

MAX_COMMAND = 1024  # bytes; a command is a word or a small JSON object


class CommandError(ValueError):
    """A payload that is not a command (the message says why, for the log)."""


def parse_command(payload: bytes) -> ActuatorWrite:
    """The command in ``payload``; :class:`CommandError` when it is not one."""
    if len(payload) > MAX_COMMAND:
        raise CommandError(f"{len(payload)} bytes: a command is at most {MAX_COMMAND}")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandError("not UTF-8 text") from None
    try:
        if text.startswith("{"):
            return ActuatorWrite.model_validate(json.loads(text))
        return ActuatorWrite.model_validate({"state": text.lower()})
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors(include_input=False)[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            field = first["loc"][0] if first["loc"] else None
            raise CommandError(f"{field}: {message}" if field else message) from None
        raise CommandError(f"not JSON: {exc}") from None
