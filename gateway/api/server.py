"""The HTTP API's routes and handlers: JSON in, JSON out, bearer tokens on /api/v1.

Errors are ``{"error": {"code": ..., "message": ...}}`` with the fitting
4xx status; bad input never causes a 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.api.access import AccessPolicy
from gateway.api.auth import TokenTable
from gateway.api.hooks import (
    HookSink,
    Unverified,
    check_payload,
    check_request,
    parse_body,
    parse_json,
)
from gateway.api.middleware import (
    ACCESS_KEY,
    ADDRESS_KEY,
    CLIENT_KEY,
    MAX_BODY,
    TOKENS_KEY,
    NotFound,
    access,
    bearer_auth,
    blocked,
    error,
    json_errors,
)
from gateway.api.models import ActuatorWrite, MessageQuery, SensorWrite
from gateway.api.openapi import openapi_document
from gateway.config.models import GatewayConfig
from gateway.events import HookReceived

_LOG = logging.getLogger(__name__)

JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "")
"""Content types taken as JSON. curl -d sends x-www-form-urlencoded unless told
otherwise; such a body must still be valid JSON."""


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
HOOKS_KEY = web.AppKey("hooks", HookSink)
HOOK_IDS_KEY = web.AppKey("hook_ids", set[tuple[str, str]])


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
    if not await request.app[CONTROL_KEY].retry_message(msg_id):
        raise NotFound(f"no message {msg_id!r} in the outbox")
    return web.json_response({"id": msg_id, "state": "pending"})


async def enable_endpoint(request: web.Request) -> web.Response:
    name = request.match_info["name"]
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
