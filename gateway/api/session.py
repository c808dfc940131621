"""Dashboard sessions: a token exchanged once for an HttpOnly, SameSite=Strict cookie.

The cookie is signed, not stored: ``NAME.EXPIRES.TOKENPRINT.MAC``, with the
key in ``session.key`` in the state directory (sessions outlive a restart).
``TOKENPRINT`` is a digest of the token's secret: changing or removing the
token in the config ends its sessions. Every state-changing request made
with the cookie must carry ``X-CSRF-Token``, an HMAC of the cookie that only
the page (which asked ``GET /api/v1/session``) knows; a form or script of
another site sends the cookie (no: SameSite=Strict) and never the header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path

from gateway.api.auth import Client, TokenTable

_LOG = logging.getLogger(__name__)

COOKIE = "gateway_session"
CSRF_HEADER = "X-CSRF-Token"
LIFETIME = 7 * 86400.0


def _key(path: Path | None) -> bytes:
    """The signing key, made once (mode 0600); a fresh one when it cannot be kept."""
    if path is not None:
        try:
            key = path.read_bytes()
            if len(key) >= 32:
                return key
        except OSError:
            pass
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key)
            return key
        except OSError as exc:
            _LOG.warning("cannot keep %s (%s): dashboard sessions end at a restart", path, exc)
    return secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Sessions:
    def __init__(self, tokens: TokenTable, key_path: Path | None = None) -> None:
        self.tokens = tokens
        self._key = _key(key_path)

    def _mac(self, text: str, purpose: bytes = b"session") -> str:
        return _b64(hmac.new(self._key, purpose + b"\0" + text.encode(), hashlib.sha256).digest())

    def open(self, client: Client, secret: str, now: float | None = None) -> str:
        """The cookie value for ``client`` (who presented ``secret``)."""
        expires = int((now or time.time()) + LIFETIME)
        body = f"{_b64(client.name.encode())}.{expires}.{_print(secret)}"
        return f"{body}.{self._mac(body)}"

    def client(self, cookie: str | None, now: float | None = None) -> Client | None:
        """The client of a cookie that is ours, unexpired, of a token still configured."""
        if not cookie or len(cookie) > 512 or cookie.count(".") != 3:
            return None
        body, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac.encode("utf-8", "replace"), self._mac(body).encode()):
            return None
        _name, expires, token_print = body.split(".")
        if not expires.isdigit() or int(expires) < (now or time.time()):
            return None
        return self.tokens.by_print(token_print, _print)

    def csrf(self, cookie: str) -> str:
        return self._mac(cookie, b"csrf")

    def csrf_ok(self, cookie: str, presented: str | None) -> bool:
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode("utf-8", "replace"), self.csrf(cookie).encode())


def _print(secret: str) -> str:
    return hashlib.sha256(b"token\0" + secret.encode("utf-8", "replace")).hexdigest()[:16]
