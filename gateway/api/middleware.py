"""The API's outer layers: JSON errors, who may connect, and bearer tokens.

Every answer that is not a handler's own passes through here: errors become
``{"error": {"code": ..., "message": ...}}``, clients outside
``server.allow`` or over their rate get 403/429, requests beyond
``server.max_in_flight`` get 503, and ``/api/v1`` wants a bearer token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway import safejson
from gateway.api.access import AccessPolicy, Pool, client_key
from gateway.api.auth import Client, Scope, TokenTable
from gateway.api.hooks import parse_json
from gateway.api.session import COOKIE, CSRF_HEADER, Sessions
from gateway.control import Control
from gateway.errors import InvalidValue, NotFound, OutboxError, Refused
from gateway.ratelog import RateLimitedLog

_LOG = logging.getLogger(__name__)


def json_response(
    doc: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Every JSON answer is valid JSON, whatever a sensor or payload holds."""
    body = safejson.dumps(doc, safejson.SPACED)
    return web.Response(
        body=body, status=status, headers=headers, content_type="application/json", charset="utf-8"
    )


_SLOW_LOG = RateLimitedLog(_LOG)
_REFUSED_LOG = RateLimitedLog(_LOG)
_REJECTED_LOG = RateLimitedLog(_LOG, every=1.0)  # an audit line, but not a flood

MAX_BODY = 64 * 1024
AUTHENTICATED_PATHS = ("/api/v1", "/metrics")
EVENTS_PATH = "/api/v1/events"
SESSION_PATH = "/api/v1/session"
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")

CLIENT_KEY = web.RequestKey("client", Client)
ADDRESS_KEY = web.RequestKey("address", str)
TOKENS_KEY = web.AppKey("tokens", TokenTable)
SCOPES_KEY = web.AppKey("scopes", dict[Callable[..., Any], Scope])
ACCESS_KEY = web.AppKey("access", AccessPolicy)
CONTROL_KEY = web.AppKey("control", Control)
SESSIONS_KEY = web.AppKey("sessions", Sessions)


JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "")
"""Content types taken as JSON. curl -d sends x-www-form-urlencoded unless told
otherwise; such a body must still be valid JSON."""


async def read_json(request: web.Request, model: type[BaseModel]) -> Any:
    ctype = request.content_type if request.body_exists else ""
    if ctype not in JSON_TYPES and not ctype.endswith("+json"):
        raise web.HTTPUnsupportedMediaType(text="send a JSON body (Content-Type: application/json)")
    doc = parse_json(await read_body(request))
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise web.HTTPUnprocessableEntity(text=describe_errors(exc)) from None


def describe_errors(exc: ValidationError, where: str = "body") -> str:
    """``field: message`` for each field, without pydantic's union and validator names."""
    by_field: dict[str, str] = {}
    for e in exc.errors(include_input=False):
        field = ".".join(str(p) for p in e["loc"] if "[" not in str(p)) or where
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown field"
        by_field.setdefault(field, message)
    return "; ".join(f"{field}: {message}" for field, message in by_field.items())


def who(request: web.Request) -> str:
    """The audit line's who: ``token NAME from ADDRESS``."""
    return f"token {request[CLIENT_KEY].name} from {request[ADDRESS_KEY]}"


def error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers or None
    )


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
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
        return error(404, "not_found", str(exc))
    except Refused as exc:
        return error(409, "conflict", str(exc))
    except InvalidValue as exc:
        return error(422, "invalid", str(exc))
    except OutboxError as exc:  # not committed: never answer "yes"
        _LOG.error("API: %s %s: %s: answered 503", request.method, request.path[:80], exc)
        return error(503, "not_stored", str(exc), **{"Retry-After": "30"})
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
        _REFUSED_LOG.warning(
            "API: refused %s %s from %s (not in server.allow)",
            request.method,
            request.path[:80],
            client,
        )
        return error(403, "forbidden", "this address may not use the gateway's API")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return error(413, "too_large", f"the body is larger than {MAX_BODY // 1024} KiB")
    if request.path != "/healthz":
        wait = policy.retry_after(client)
        if wait:
            return error(
                429,
                "rate_limited",
                "too many requests; slow down",
                **{"Retry-After": str(int(wait + 0.999))},
            )
    if request.path.startswith(AUTHENTICATED_PATHS):
        return await handler(request)  # its slot is taken once the token is checked
    return await in_pool(request, handler, Pool.OPEN)


async def in_pool(request: web.Request, handler: Handler, pool: Pool) -> web.StreamResponse:
    """Run the handler in a slot of ``pool``; 503 when the pool (or the client's share) is full."""
    policy, client = request.app[ACCESS_KEY], request[ADDRESS_KEY]
    if not policy.acquire(pool, client):
        return error(503, "busy", "too many requests in flight", **{"Retry-After": "1"})
    try:
        return await handler(request)
    finally:
        policy.release(pool, client)


async def read_body(request: web.Request) -> bytes:
    """The whole body, within ``server.body_timeout`` (408 for a client that trickles it)."""
    if request.content.is_eof():  # all here already (a small body): nothing to time
        return await request.read()
    try:
        async with asyncio.timeout(request.app[ACCESS_KEY].body_timeout):
            return await request.read()
    except TimeoutError:
        _SLOW_LOG.warning(
            "API: %s %s from %s: the body did not arrive in time (408)",
            request.method,
            request.path[:80],
            request[ADDRESS_KEY],
        )
        raise web.HTTPRequestTimeout(text="the request body did not arrive in time") from None


def out_of_scope(request: web.Request, client: Client) -> web.Response | None:
    """403 when the route's declared scope is not the token's."""
    scope = request.app[SCOPES_KEY].get(request.match_info.handler)
    if scope is None:  # no such route: the router answers 404 or 405
        return None
    name = request.match_info.get("id", "")
    if client.may(scope, name):
        return None
    target = f" {name!r}" if scope in (Scope.SET_SENSOR, Scope.SWITCH_ACTUATOR) else ""
    return error(403, "forbidden", f"token {client.name!r} may not {scope.value}{target}")


def blocked(request: web.Request, door: str, credential: str) -> web.Response | None:
    """429 for a client with too many failed verifications at this door in the window."""
    wait = request.app[ACCESS_KEY].failures.retry_after(
        client_key(request[ADDRESS_KEY]), door, credential
    )
    if not wait:
        return None
    return error(
        429,
        "rate_limited",
        "too many failed verifications from this address; wait",
        **{"Retry-After": str(int(wait + 0.999))},
    )


def failed(request: web.Request, door: str, credential: str) -> None:
    """Count a failed verification; say so when it locks the client out."""
    address = request[ADDRESS_KEY]
    if request.app[ACCESS_KEY].failures.failed(client_key(address), door, credential):
        _LOG.warning(
            "%s: %s is refused for %gs after %d failed verifications (the same wrong "
            "credential: only that one; different ones: every credential)",
            door,
            address,
            request.app[ACCESS_KEY].failures.window,
            request.app[ACCESS_KEY].failures.limit,
        )


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``/api/v1`` needs ``Authorization: Bearer <token>`` or a dashboard session
    cookie (with ``X-CSRF-Token`` to change anything); failures are rate limited."""
    if not request.path.startswith(AUTHENTICATED_PATHS):
        return await handler(request)
    if request.path == SESSION_PATH and request.method == "POST":
        return await in_pool(request, handler, Pool.OPEN)  # a login: the handler checks it
    authorization = request.headers.get("Authorization", "")
    cookie = request.cookies.get(COOKIE) if not authorization else None
    if (refusal := blocked(request, "API", authorization)) is not None:
        return refusal
    tokens, policy, address = request.app[TOKENS_KEY], request.app[ACCESS_KEY], request[ADDRESS_KEY]
    if not tokens and policy.local(address):
        if request.remote == address and any(h in request.headers for h in PROXY_HEADERS):
            # a local reverse proxy that is not in trusted_proxies: the client is elsewhere
            return error(
                403,
                "forbidden",
                "no server.tokens are configured and this request came through a proxy "
                "not listed in server.trusted_proxies",
            )
        request[CLIENT_KEY] = Client.everything("local")  # no tokens: this machine only
        return await _admitted(request, handler)
    sessions = request.app[SESSIONS_KEY]
    client = sessions.client(cookie) if cookie else tokens.client(authorization)
    if client is None:
        failed(request, "API", authorization)
        _REJECTED_LOG.warning(
            "API: rejected request from %s to %s: bad or missing token", address, request.path[:80]
        )
        message = "a valid 'Authorization: Bearer <token>' is required"
        if cookie:
            message = "the session has ended: log in again"
        elif not tokens:
            message = "no server.tokens are configured: the API answers this machine only"
        return error(
            401,
            "unauthorized",
            message,
            **{"WWW-Authenticate": 'Bearer realm="edge-gateway"'},
        )
    writes = request.method not in ("GET", "HEAD")
    if cookie and writes and not sessions.csrf_ok(cookie, request.headers.get(CSRF_HEADER)):
        return error(403, "forbidden", f"a session's change needs its {CSRF_HEADER} header")
    if client.read_only and writes and request.path != SESSION_PATH:
        return error(403, "forbidden", f"token {client.name!r} is read-only")
    if (refusal := out_of_scope(request, client)) is not None:
        return refusal
    request[CLIENT_KEY] = client
    return await _admitted(request, handler)


async def _admitted(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == EVENTS_PATH:  # open for hours: bounded by the stream, not the pool
        return await handler(request)
    return await in_pool(request, handler, Pool.AUTHENTICATED)


class _OneLinePerMinute(logging.Filter):
    """aiohttp logs every unparseable request as an ERROR traceback; anyone can send
    those. Here each is one WARNING line without the traceback, at most one a minute
    (the next one says how many were left out)."""

    def __init__(self) -> None:
        super().__init__()
        self._limit = RateLimitedLog(_LOG)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        what = f"{type(exc).__name__}: {str(exc)[:120]}" if exc else record.getMessage()[:120]
        self._limit.warning("API: a malformed request was refused (%s)", what)
        return False


def http_logger() -> logging.Logger:
    """The logger aiohttp's server uses for protocol errors (pass it to ``AppRunner``)."""
    logger = logging.getLogger("gateway.api.http")
    if not any(isinstance(f, _OneLinePerMinute) for f in logger.filters):
        logger.addFilter(_OneLinePerMinute())
    return logger
