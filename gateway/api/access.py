"""Who may reach the API at all: client networks, proxies, rate and concurrency limits."""

from __future__ import annotations

import enum
import functools
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


@functools.lru_cache(maxsize=4096)  # the same few clients ask again and again
def _address(text: str | None) -> Address | None:
    try:
        return ipaddress.ip_address((text or "").strip().strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _shown(address: Address) -> str:
    return str(address)


@functools.lru_cache(maxsize=4096)
def client_key(client: str) -> str:
    """What limits count by: the address, or for IPv6 its /64 (one host's whole range)."""
    address = _address(client)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address) if address is not None else client


class Pool(enum.Enum):
    """Requests in flight are counted apart: clients that proved who they are
    (a bearer token, checked before the body is read) never wait behind
    clients that have not (hooks, verified only once the body is in)."""

    AUTHENTICATED = "authenticated"
    OPEN = "open"


@dataclass
class AccessPolicy:
    """Allowlist, trusted proxies and limits from ``server:``; replaced on reload."""

    allow: list[Network] | None = None
    proxies: list[Network] = field(default_factory=list)
    requests: int = 120
    per: float = 60.0
    max_in_flight: int = 64
    body_timeout: float = 10.0
    clock: Callable[[], float] = time.monotonic
    failures: FailureLimiter = field(default_factory=FailureLimiter)
    _windows: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)
    _in_flight: dict[Pool, int] = field(default_factory=lambda: dict.fromkeys(Pool, 0))
    _open_by_client: dict[str, int] = field(default_factory=dict)

    @property
    def per_client(self) -> int:
        """Open (unauthenticated) requests one client may have in flight."""
        return max(1, self.max_in_flight // 4)

    def acquire(self, pool: Pool, client: str) -> bool:
        """Take a slot in ``pool`` for ``client``; False when none is free (503)."""
        if self._in_flight[pool] >= self.max_in_flight:
            return False
        if pool is Pool.OPEN:
            key = client_key(client)
            if self._open_by_client.get(key, 0) >= self.per_client:
                return False
            self._open_by_client[key] = self._open_by_client.get(key, 0) + 1
        self._in_flight[pool] += 1
        return True

    def release(self, pool: Pool, client: str) -> None:
        self._in_flight[pool] -= 1
        if pool is Pool.OPEN:
            key = client_key(client)
            left = self._open_by_client.pop(key, 1) - 1
            if left > 0:
                self._open_by_client[key] = left

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
        self.body_timeout = server.body_timeout
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
        return _shown(address)

    def allowed(self, client: str) -> bool:
        if self.allow is None:
            return True
        address = _address(client)
        return address is not None and any(address in net for net in self.allow)

    def retry_after(self, client: str) -> float:
        """Count a request from ``client``; seconds to wait if it is one too many (else 0)."""
        now = self.clock()
        client = client_key(client)
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
