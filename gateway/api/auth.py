"""Bearer tokens for /api/v1, and the rate limit on failed attempts."""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.config.server import TokenConfig


@dataclass(frozen=True)
class Client:
    """Who is calling: the token's name and what it may do."""

    name: str
    actuators: frozenset[str] | None  # None: every actuator
    read_only: bool

    def may_switch(self, actuator: str) -> bool:
        return not self.read_only and (self.actuators is None or actuator in self.actuators)


class TokenTable:
    """Looks up the client of an ``Authorization`` header, in constant time per token."""

    def __init__(self, tokens: Mapping[str, TokenConfig]) -> None:
        self.replace(tokens)

    def replace(self, tokens: Mapping[str, TokenConfig]) -> None:
        """Use the tokens of a reloaded config."""
        self._tokens = [
            (
                t.token.get_secret_value().encode(),
                Client(
                    name, frozenset(t.actuators) if t.actuators is not None else None, t.read_only
                ),
            )
            for name, t in tokens.items()
        ]

    def __bool__(self) -> bool:
        return bool(self._tokens)

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


class FailureLimiter:
    """At most ``limit`` failed authentications per client address per ``window`` seconds."""

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
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again (0: now)."""
        stamps = self._recent(address)
        if len(stamps) < self.limit:
            return 0.0
        return max(stamps[0] + self.window - self.clock(), 1.0)

    def failed(self, address: str) -> None:
        self._recent(address).append(self.clock())
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def _recent(self, address: str) -> list[float]:
        stamps = self._failures.setdefault(address, [])
        cutoff = self.clock() - self.window
        while stamps and stamps[0] < cutoff:
            stamps.pop(0)
        return stamps
