"""``POST /hooks/{name}``: inbound webhooks, verified on the raw bytes before parsing.

Three ways to verify, per hook: ``standard-webhooks`` (webhook-id,
webhook-timestamp, webhook-signature; ±5 minutes), ``github``
(``X-Hub-Signature-256``), ``token`` (a shared secret in a header). A
``webhook-id`` (or ``X-GitHub-Delivery``) seen within the last 7 days is
answered 200 and not acted on again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway import safejson
from gateway.config.server import HookConfig
from gateway.signing import SignatureError, random_token, verify

_LOG = logging.getLogger(__name__)


class Unverified(Exception):
    """The request does not prove it comes from the hook's sender."""


def check_request(config: HookConfig, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """Verify a request for one hook; return its delivery id. Raises :class:`Unverified`.

    Any exception while looking at the headers (bytes that are not UTF-8,
    digits that are not ASCII, ...) is an unverified request, never a 500.
    """
    try:
        msg_id = _check(config, headers, body, now)
    except Unverified:
        raise
    except Exception as exc:
        raise Unverified(f"malformed verification headers ({type(exc).__name__})") from None
    if not msg_id.isascii() or not msg_id.isprintable() or len(msg_id) > 256:
        raise Unverified("the delivery id is not printable ASCII of at most 256 characters")
    return msg_id


def _check(config: HookConfig, headers: Mapping[str, str], body: bytes, now: float) -> str:
    if config.verify == "standard-webhooks":
        try:
            return verify(config.secrets, headers, body, now)
        except SignatureError as exc:
            raise Unverified(str(exc)) from None
    if config.verify == "github":
        given = headers.get("X-Hub-Signature-256", "")
        if not given.startswith("sha256="):
            raise Unverified("missing or malformed X-Hub-Signature-256 header")
        for secret in config.secrets:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            if hmac.compare_digest(given.encode("utf-8", "replace"), f"sha256={digest}".encode()):
                return headers.get("X-GitHub-Delivery", "") or _made_up_id()
        raise Unverified("X-Hub-Signature-256 does not match")
    assert config.token is not None
    expected = config.token.get_secret_value().encode()
    presented = headers.get(config.header, "")
    if config.header.lower() == "authorization":
        scheme, _, presented = presented.partition(" ")
        if scheme.lower() != "bearer":
            raise Unverified("expected 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(presented.strip().encode("utf-8", "replace"), expected):
        raise Unverified(f"wrong or missing token in {config.header}")
    return headers.get("webhook-id", "") or _made_up_id()


def _made_up_id() -> str:
    return "evt_" + random_token(12)


def check_payload(config: HookConfig, payload: Any) -> None:
    """422 naming the fields when the body does not match the hook's ``schema``."""
    if config.validator is None:
        return
    errors = sorted(config.validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        text = "; ".join(
            f"{'.'.join(['body', *(str(p) for p in e.absolute_path)])}: {e.message}"
            for e in errors[:5]
        )
        raise web.HTTPUnprocessableEntity(text=text)


def parse_body(body: bytes, content_type: str) -> Any:
    if content_type not in ("application/json", "") and not content_type.endswith("+json"):
        raise web.HTTPUnsupportedMediaType(
            text="send JSON (Content-Type: application/json); for GitHub choose that content type"
        )
    return parse_json(body) if body.strip() else {}


def parse_json(raw: bytes) -> Any:
    """The JSON document in ``raw``; 400 when it is not strict JSON (see :mod:`safejson`)."""
    try:
        return safejson.loads(raw)
    except safejson.JsonError as exc:
        raise web.HTTPBadRequest(text=f"the body is not valid JSON ({exc})") from None
