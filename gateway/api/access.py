"""Who may reach the API at all: client networks, proxies, rate and concurrency limits."""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.api.auth import FailureLimiter
from gateway.config.server import ServerSection

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(items: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(item, strict=False) for item in items]


def _address(text: str | None) -> Address | None:
    try:
        return ipaddress.ip_address((text or "").strip().strip("[]"))
    except ValueError:
        return None


@dataclass
class AccessPolicy:
    """Allowlist, trusted proxies and limits from ``server:``; replaced on reload."""

    allow: list[Network] | None = None
    proxies: list[Network] = field(default_factory=list)
    requests: int = 120
    per: float = 60.0
    max_in_flight: int = 64
    clock: Callable[[], float] = time.monotonic
    in_flight: int = 0
    failures: FailureLimiter = field(default_factory=FailureLimiter)
    _windows: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)

    @classmethod
    def from_config(cls, server: ServerSection) -> AccessPolicy:
        policy = cls()
        policy.update(server)
        return policy

    def update(self, server: ServerSection) -> None:
        self.allow = _networks(server.allow) if server.allow is not None else None
        self.proxies = _networks(server.trusted_proxies)
        self.requests = server.rate_limit.requests
        self.per = server.rate_limit.per
        self.max_in_flight = server.max_in_flight
        self.failures.limit = server.failed_auth.requests
        self.failures.window = server.failed_auth.per

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The real client: the peer, or behind a trusted proxy the last untrusted
        address of ``X-Forwarded-For`` (the ones to its left can be forged)."""
        address = _address(peer)
        if address is None:
            return peer or "unknown"
        if forwarded_for and self._trusted(address):
            for hop in reversed(forwarded_for.split(",")):
                hop_address = _address(hop)
                if hop_address is None:
                    break
                address = hop_address
                if not self._trusted(hop_address):
                    break
        return str(address)

    def allowed(self, client: str) -> bool:
        if self.allow is None:
            return True
        address = _address(client)
        return address is not None and any(address in net for net in self.allow)

    def retry_after(self, client: str) -> float:
        """Count a request from ``client``; seconds to wait if it is one too many (else 0)."""
        now = self.clock()
        start, count = self._windows.get(client, (now, 0))
        if now - start >= self.per:
            start, count = now, 0
        count += 1
        self._windows[client] = (start, count)
        self._windows.move_to_end(client)
        while len(self._windows) > 10_000:
            self._windows.popitem(last=False)
        if count > self.requests:
            return max(start + self.per - now, 1.0)
        return 0.0

    def local(self, client: str) -> bool:
        """Whether ``client`` (as :meth:`client` found it) is this machine."""
        address = _address(client)
        return address is not None and address.is_loopback

    def _trusted(self, address: Address) -> bool:
        return any(address in net for net in self.proxies)
