"""Bearer tokens for /api/v1, and the rate limit on failed attempts."""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import assert_never

from gateway.config.server import TokenConfig


class Scope(enum.Enum):
    """What an endpoint needs from the token that calls it."""

    READ = "read"  # status, sensors, actuators, metrics, the OpenAPI document
    SET_SENSOR = "set a sensor"  # the {id} of the path
    SWITCH_ACTUATOR = "switch an actuator"  # the {id} of the path
    READ_OUTBOX = "read the outbox"
    CHANGE_OUTBOX = "retry or re-enable outbox messages"
    MANAGE = "enable, disable or run rules, or change the log level"


@dataclass(frozen=True)
class Client:
    """Who is calling: the token's name and what it may do."""

    name: str
    actuators: frozenset[str] | None  # None: every actuator
    read_only: bool
    sensors: frozenset[str] | None = None  # None: every sensor
    outbox: bool = True

    @classmethod
    def everything(cls, name: str) -> Client:
        return cls(name, None, False, None, True)

    @classmethod
    def from_config(cls, name: str, token: TokenConfig) -> Client:
        """A token that names actuators or sensors may do only that (and not the outbox)."""
        limited = token.actuators is not None or token.sensors is not None
        return cls(
            name,
            frozenset(token.actuators or ()) if limited else None,
            token.read_only,
            frozenset(token.sensors or ()) if limited else None,
            token.outbox if token.outbox is not None else not limited,
        )

    def may_switch(self, actuator: str) -> bool:
        return not self.read_only and (self.actuators is None or actuator in self.actuators)

    def may_set(self, sensor: str) -> bool:
        return not self.read_only and (self.sensors is None or sensor in self.sensors)

    def may(self, scope: Scope, name: str = "") -> bool:
        """Whether this client may use an endpoint needing ``scope`` (on ``name``)."""
        match scope:
            case Scope.READ:
                return True
            case Scope.SET_SENSOR:
                return self.may_set(name)
            case Scope.SWITCH_ACTUATOR:
                return self.may_switch(name)
            case Scope.READ_OUTBOX:
                return self.outbox
            case Scope.CHANGE_OUTBOX:
                return self.outbox and not self.read_only
            case Scope.MANAGE:  # a token limited to some devices is limited to those
                return not self.read_only and self.actuators is None and self.sensors is None
            case _:
                assert_never(scope)


class TokenTable:
    """Looks up the client of an ``Authorization`` header, in constant time per token."""

    def __init__(self, tokens: Mapping[str, TokenConfig]) -> None:
        self.replace(tokens)

    def replace(self, tokens: Mapping[str, TokenConfig]) -> None:
        """Use the tokens of a reloaded config."""
        self._tokens = [
            (t.token.get_secret_value().encode(), Client.from_config(name, t))
            for name, t in tokens.items()
        ]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def by_print(self, presented: str, digest: Callable[[str], str]) -> Client | None:
        """The client whose secret's ``digest`` is ``presented`` (a dashboard session's)."""
        found = None
        for secret, client in self._tokens:
            if hmac.compare_digest(
                digest(secret.decode()).encode(), presented.encode("utf-8", "replace")
            ):
                found = client
        return found

    def client(self, authorization: str | None) -> Client | None:
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        given = presented.strip().encode("utf-8", "replace")
        found = None
        for secret, client in self._tokens:  # compare with every token: no early exit
            if hmac.compare_digest(given, secret):
                found = client
        return found


def fingerprint(credential: str) -> str:
    """A short digest of what a client presented, to tell one wrong credential from many."""
    return hashlib.sha256(credential.encode("utf-8", "surrogateescape")).hexdigest()[:16]


class FailureLimiter:
    """Limits failed verifications per client and per door (the API, each hook).

    Within ``window`` seconds, a client (an IPv4 address, an IPv6 /64) is
    refused at one door when it presented the *same* wrong credential
    ``limit`` times (a misconfigured sender: its other, valid credentials
    still work) or ``limit`` *different* wrong ones (someone guessing: the
    door is closed to that client). Other doors stay open to it.
    """

    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_clients = max_clients
        self._failures: OrderedDict[tuple[str, str], list[tuple[float, str]]] = OrderedDict()

    def retry_after(self, client: str, door: str, credential: str = "") -> float:
        """Seconds until ``client`` may try ``credential`` at ``door`` again (0: now)."""
        recent = self._recent((client, door))
        if not recent:  # nothing failed lately (nearly every request): no digest to make
            return 0.0
        presented = fingerprint(credential)
        same = [stamp for stamp, fp in recent if fp == presented]
        if len(same) >= self.limit:
            return max(same[0] + self.window - self.clock(), 1.0)
        if len({fp for _, fp in recent}) >= self.limit:
            return max(recent[0][0] + self.window - self.clock(), 1.0)
        return 0.0

    def failed(self, client: str, door: str, credential: str = "") -> bool:
        """Count a failure; True when it locks ``client`` out (log that once)."""
        key = (client, door)
        before = self.retry_after(client, door, credential)
        self._failures.setdefault(key, []).append((self.clock(), fingerprint(credential)))
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)
        return not before and bool(self.retry_after(client, door, credential))

    def _recent(self, key: tuple[str, str]) -> list[tuple[float, str]]:
        stamps = self._failures.get(key)
        if stamps is None:  # not kept: a client that never failed costs no memory
            return []
        cutoff = self.clock() - self.window
        while stamps and stamps[0][0] < cutoff:
            stamps.pop(0)
        return stamps
