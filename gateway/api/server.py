"""The HTTP API: JSON in, JSON out, bearer tokens on /api/v1.

Errors are ``{"error": {"code": ..., "message": ...}}`` with the fitting
4xx status; bad input never causes a 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.api.access import AccessPolicy
from gateway.api.auth import Client, TokenTable
from gateway.api.hooks import (
    HookSink,
    Unverified,
    check_payload,
    check_request,
    parse_body,
    parse_json,
)
from gateway.api.models import ActuatorWrite, MessageQuery, SensorWrite
from gateway.api.openapi import openapi_document
from gateway.config.models import GatewayConfig
from gateway.errors import GatewayError
from gateway.events import HookReceived

_LOG = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "")
"""Content types taken as JSON. curl -d sends x-www-form-urlencoded unless told
otherwise; such a body must still be valid JSON."""

CLIENT_KEY = web.RequestKey("client", Client)


class NotFound(GatewayError, KeyError):
    """No sensor, actuator or message of that name."""


class Refused(GatewayError, ValueError):
    """The request is understood but cannot be done (e.g. writing a GPIO sensor)."""


class Control(HookSink, Protocol):
    """What the API may see and do in the running gateway."""

    async def status(self) -> dict[str, Any]: ...
    def sensors(self) -> dict[str, dict[str, Any]]: ...
    def actuators(self) -> dict[str, dict[str, Any]]: ...
    async def inject(self, sensor: str, value: bool | float | str, who: str) -> dict[str, Any]: ...
    def actuate(
        self, actuator: str, state: bool | float | str, revert_after: float | None, who: str
    ) -> dict[str, Any]: ...
    async def outbox(self) -> dict[str, Any]: ...
    async def metrics(self) -> str: ...
    async def messages(
        self, state: str | None, endpoint: str | None, limit: int
    ) -> list[dict[str, Any]]: ...
    async def message(self, msg_id: str) -> dict[str, Any] | None: ...
    async def retry_message(self, msg_id: str) -> bool: ...
    async def enable_endpoint(self, endpoint: str) -> bool: ...
    def ready(self) -> bool: ...
    @property
    def config(self) -> GatewayConfig: ...


CONTROL_KEY = web.AppKey("control", Control)
TOKENS_KEY = web.AppKey("tokens", TokenTable)
HOOKS_KEY = web.AppKey("hooks", HookSink)
ACCESS_KEY = web.AppKey("access", AccessPolicy)
HOOK_IDS_KEY = web.AppKey("hook_ids", set[tuple[str, str]])


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


ADDRESS_KEY = web.RequestKey("address", str)


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


async def read_json(request: web.Request, model: type[BaseModel]) -> Any:
    ctype = request.content_type if request.body_exists else ""
    if ctype not in JSON_TYPES and not ctype.endswith("+json"):
        raise web.HTTPUnsupportedMediaType(text="send a JSON body (Content-Type: application/json)")
    doc = parse_json(await request.read())
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


def _who(request: web.Request) -> str:
    return f"token {request[CLIENT_KEY].name} from {request[ADDRESS_KEY]}"


# ---------------------------------------------------------------------- handlers


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[CONTROL_KEY].ready():
        return web.json_response({"status": "ready"})
    return error(503, "not_ready", "starting or reloading")


async def status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CONTROL_KEY].status())


async def list_sensors(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONTROL_KEY].sensors())


def _named(request: web.Request, items: Mapping[str, Any], what: str) -> str:
    """The ``{id}`` of the request, which must be one of ``items`` (else 404)."""
    name = request.match_info["id"]
    if name not in items:
        raise NotFound(f"no {what} named {name!r}")
    return name


async def get_sensor(request: web.Request) -> web.Response:
    sensors = request.app[CONTROL_KEY].sensors()
    return web.json_response(sensors[_named(request, sensors, "sensor")])


async def post_sensor(request: web.Request) -> web.Response:
    control = request.app[CONTROL_KEY]
    name = _named(request, control.config.sensors, "sensor")
    body = await read_json(request, SensorWrite)
    return web.json_response(await control.inject(name, body.value, _who(request)))


async def list_actuators(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONTROL_KEY].actuators())


async def get_actuator(request: web.Request) -> web.Response:
    actuators = request.app[CONTROL_KEY].actuators()
    return web.json_response(actuators[_named(request, actuators, "actuator")])


async def post_actuator(request: web.Request) -> web.Response:
    control = request.app[CONTROL_KEY]
    name = _named(request, control.config.actuators, "actuator")
    client = request[CLIENT_KEY]
    if not client.may_switch(name):
        return error(403, "forbidden", f"token {client.name!r} may not switch {name!r}")
    body = await read_json(request, ActuatorWrite)
    return web.json_response(control.actuate(name, body.state, body.for_, _who(request)))


async def metrics(request: web.Request) -> web.Response:
    text = await request.app[CONTROL_KEY].metrics()
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def outbox(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CONTROL_KEY].outbox())


async def list_messages(request: web.Request) -> web.Response:
    try:
        query = MessageQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise web.HTTPUnprocessableEntity(text=describe_errors(exc, "query")) from None
    found = await request.app[CONTROL_KEY].messages(query.state, query.endpoint, query.limit)
    return web.json_response({"messages": found})


async def get_message(request: web.Request) -> web.Response:
    msg_id = request.match_info["id"]
    message = await request.app[CONTROL_KEY].message(msg_id)
    if message is None:
        raise NotFound(f"no message {msg_id!r} in the outbox")
    return web.json_response(message)


async def retry_message(request: web.Request) -> web.Response:
    msg_id = request.match_info["id"]
    if request[CLIENT_KEY].read_only:
        return error(403, "forbidden", "read-only token")
    if not await request.app[CONTROL_KEY].retry_message(msg_id):
        raise NotFound(f"no message {msg_id!r} in the outbox")
    return web.json_response({"id": msg_id, "state": "pending"})


async def enable_endpoint(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if request[CLIENT_KEY].read_only:
        return error(403, "forbidden", "read-only token")
    if not await request.app[CONTROL_KEY].enable_endpoint(name):
        raise NotFound(f"no webhook endpoint {name!r}")
    return web.json_response({"endpoint": name, "disabled": False})


async def post_hook(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    sink = request.app[HOOKS_KEY]
    config = sink.hook_config(name)
    if config is None:
        raise NotFound(f"no hook named {name!r}")
    address = request[ADDRESS_KEY]
    if (refusal := blocked(request)) is not None:
        return refusal
    body = await request.read()
    try:
        msg_id = check_request(config, request.headers, body, time.time())
    except Unverified as exc:
        request.app[ACCESS_KEY].failures.failed(address)
        _LOG.warning("hook %s: rejected a request from %s: %s", name, address, exc)
        return error(401, "unauthorized", f"verification failed: {exc}")
    payload = parse_body(body, request.content_type if request.body_exists else "")
    check_payload(config, payload)
    busy = request.app[HOOK_IDS_KEY]
    if (name, msg_id) in busy or await sink.hook_seen(name, msg_id):
        _LOG.info(
            "hook %s: %s from %s was already handled: not acted on again", name, msg_id, address
        )
        return web.json_response({"id": msg_id, "duplicate": True})
    busy.add((name, msg_id))
    try:
        event = HookReceived(
            hook=name,
            id=msg_id,
            payload=payload,
            query=dict(request.query),
            headers={h: request.headers[h] for h in config.headers if h in request.headers},
            time=time.time(),
            source=address,
        )
        await sink.hook_received(event)
    finally:
        busy.discard((name, msg_id))
    return web.json_response({"id": msg_id}, status=202)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[CONTROL_KEY].config))


def make_app(
    control: Control, tokens: TokenTable, policy: AccessPolicy | None = None
) -> web.Application:
    """The aiohttp application; the caller runs it (``web.AppRunner``)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors, access, bearer_auth])
    app[CONTROL_KEY] = control
    app[HOOKS_KEY] = control
    app[TOKENS_KEY] = tokens
    app[ACCESS_KEY] = policy or AccessPolicy()
    app[HOOK_IDS_KEY] = set()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/sensors", list_sensors)
    app.router.add_get("/api/v1/sensors/{id}", get_sensor)
    app.router.add_post("/api/v1/sensors/{id}", post_sensor)
    app.router.add_get("/api/v1/actuators", list_actuators)
    app.router.add_get("/api/v1/actuators/{id}", get_actuator)
    app.router.add_post("/api/v1/actuators/{id}", post_actuator)
    app.router.add_get("/api/v1/outbox", outbox)
    app.router.add_get("/api/v1/outbox/messages", list_messages)  # before {id}
    app.router.add_get("/api/v1/outbox/{id}", get_message)
    app.router.add_post("/api/v1/outbox/{id}/retry", retry_message)
    app.router.add_post("/api/v1/outbox/endpoints/{name}/enable", enable_endpoint)
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_post("/hooks/{name}", post_hook)
    return app
