"""The API's outer layers: JSON errors, who may connect, and bearer tokens.

Every answer that is not a handler's own passes through here: errors become
``{"error": {"code": ..., "message": ...}}``, clients outside
``server.allow`` or over their rate get 403/429, requests beyond
``server.max_in_flight`` get 503, and ``/api/v1`` wants a bearer token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.api.access import AccessPolicy
from gateway.api.auth import Client, TokenTable
from gateway.errors import GatewayError

_LOG = logging.getLogger(__name__)

MAX_BODY = 64 * 1024

CLIENT_KEY = web.RequestKey("client", Client)
ADDRESS_KEY = web.RequestKey("address", str)
TOKENS_KEY = web.AppKey("tokens", TokenTable)
ACCESS_KEY = web.AppKey("access", AccessPolicy)


class NotFound(GatewayError, KeyError):
    """No sensor, actuator or message of that name."""


class Refused(GatewayError, ValueError):
    """The request is understood but cannot be done (e.g. writing a GPIO sensor)."""


def error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers or None
    )


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "busy",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as JSON; a bug is a logged 500 without details."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "error")
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        if exc.status == 413:
            message = f"the body is larger than {MAX_BODY // 1024} KiB"
        headers = {
            k: v
            for k, v in exc.headers.items()
            if k in ("Allow", "Retry-After", "WWW-Authenticate")
        }
        return error(exc.status, code, message, **headers)
    except NotFound as exc:
        return error(404, "not_found", str(exc.args[0]))
    except Refused as exc:
        return error(409, "conflict", str(exc))
    except ConnectionResetError:  # the client went away in the middle of its body
        _LOG.debug("API: %s %s: the client disconnected", request.method, request.path)
        return error(400, "bad_request", "the request ended early")
    except Exception:
        _LOG.exception("API: unexpected error in %s %s", request.method, request.path)
        return error(500, "internal", "internal error (see the gateway log)")


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Client networks, the per-client rate limit and the bound on requests in flight."""
    policy = request.app[ACCESS_KEY]
    client = policy.client(request.remote, request.headers.get("X-Forwarded-For"))
    request[ADDRESS_KEY] = client
    if not policy.allowed(client):
        _LOG.warning(
            "API: refused %s %s from %s (not in server.allow)", request.method, request.path, client
        )
        return error(403, "forbidden", "this address may not use the gateway's API")
    if request.path != "/healthz":
        wait = policy.retry_after(client)
        if wait:
            return error(
                429,
                "rate_limited",
                "too many requests; slow down",
                **{"Retry-After": str(int(wait + 0.999))},
            )
    if policy.in_flight >= policy.max_in_flight:
        return error(503, "busy", "too many requests in flight", **{"Retry-After": "1"})
    policy.in_flight += 1
    try:
        return await handler(request)
    finally:
        policy.in_flight -= 1


def blocked(request: web.Request) -> web.Response | None:
    """429 for a client with too many failed verifications in the window."""
    wait = request.app[ACCESS_KEY].failures.retry_after(request[ADDRESS_KEY])
    if not wait:
        return None
    return error(
        429,
        "rate_limited",
        "too many failed verifications from this address; wait",
        **{"Retry-After": str(int(wait + 0.999))},
    )


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``/api/v1`` needs ``Authorization: Bearer <token>``; failures are rate limited."""
    if not request.path.startswith(("/api/v1", "/metrics")):
        return await handler(request)
    if (refusal := blocked(request)) is not None:
        return refusal
    tokens, policy, address = request.app[TOKENS_KEY], request.app[ACCESS_KEY], request[ADDRESS_KEY]
    if not tokens and policy.local(address):
        request[CLIENT_KEY] = Client("local", None, False)  # no tokens: this machine only
        return await handler(request)
    client = tokens.client(request.headers.get("Authorization"))
    if client is None:
        policy.failures.failed(address)
        _LOG.warning(
            "API: rejected request from %s to %s: bad or missing token", address, request.path
        )
        message = "a valid 'Authorization: Bearer <token>' is required"
        if not tokens:
            message = "no server.tokens are configured: the API answers this machine only"
        return error(
            401,
            "unauthorized",
            message,
            **{"WWW-Authenticate": 'Bearer realm="edge-gateway"'},
        )
    if client.read_only and request.method not in ("GET", "HEAD"):
        return error(403, "forbidden", f"token {client.name!r} is read-only")
    request[CLIENT_KEY] = client
    return await handler(request)
