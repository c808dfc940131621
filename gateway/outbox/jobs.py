"""What producers hand the outbox thread, and what a commit hands back to the loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import safejson
from gateway.localtime import iso_utc
from gateway.outbox.rows import Row


def encode_body(event: str, data: Any, now: float) -> bytes:
    """The wire body ``{"type", "timestamp", "data"}``, stored and re-sent byte for byte."""
    return safejson.dumps({"type": event, "timestamp": iso_utc(now), "data": data})


@dataclass(frozen=True, slots=True)
class SeenHook:
    """An inbound hook delivery to remember, in the transaction of the rows before it."""

    hook: str
    msg_id: str
    time: float
    number: int


@dataclass(frozen=True, slots=True)
class Committed:
    """What one transaction settled, handed to the event loop in one call."""

    rows: list[Row]  # the new rows, as the delivery sends them
    upto: int  # every submission numbered up to this is committed, or known lost


@dataclass(frozen=True, slots=True)
class NewMessage:
    id: str
    endpoint: str
    event: str
    body: bytes
    created: float
    number: int = 0  # the order of submission, to tell a producer whether its rows failed
    request: str | None = None  # a shaped request (outbox.shapes), stored with its body

    def values(self, seq: int) -> tuple[Any, ...]:
        """The INSERT's values: seq, id, endpoint, event, body, created, next_try, request."""
        return (
            seq,
            self.id,
            self.endpoint,
            self.event,
            self.body,
            self.created,
            self.created,
            self.request,
        )

    def row(self, seq: int) -> Row:
        """The row as the delivery sends it."""
        return Row(
            seq, self.id, self.endpoint, self.event, self.body, self.created, None, 0, self.request
        )


def lost(writes: list[NewMessage | SeenHook]) -> str:
    """What a failed commit lost, for its log line."""
    messages = [w for w in writes if isinstance(w, NewMessage)]
    seen = len(writes) - len(messages)
    named = ", ".join(f"{m.event} to {m.endpoint} as {m.id}" for m in messages[:5])
    more = f" and {len(messages) - 5} more" if len(messages) > 5 else ""
    ids = f" and {seen} hook delivery id(s)" if seen else ""
    return f"{len(messages)} webhook(s){ids}: {named}{more}"
