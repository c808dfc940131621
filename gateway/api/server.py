"""The HTTP API's routes and handlers: JSON in, JSON out, bearer tokens on /api/v1.

Errors are ``{"error": {"code": ..., "message": ...}}`` with the fitting
4xx status; bad input never causes a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.api import dashboard, looking
from gateway.api.access import AccessPolicy
from gateway.api.auth import Scope, TokenTable
from gateway.api.hooks import (
    Unverified,
    check_payload,
    check_request,
    parse_body,
)
from gateway.api.middleware import (
    ACCESS_KEY,
    ADDRESS_KEY,
    CONTROL_KEY,
    MAX_BODY,
    SCOPES_KEY,
    SESSIONS_KEY,
    TOKENS_KEY,
    Handler,
    access,
    bearer_auth,
    blocked,
    describe_errors,
    error,
    failed,
    json_errors,
    json_response,
    read_body,
    read_json,
    who,
)
from gateway.api.models import ActuatorWrite, MessageQuery, SensorWrite
from gateway.api.openapi import openapi_document
from gateway.api.session import Sessions
from gateway.control import Control
from gateway.errors import NotFound, OutboxError
from gateway.events import HookReceived
from gateway.ratelog import RateLimitedLog

_LOG = logging.getLogger(__name__)

_REJECTED_HOOK_LOG = RateLimitedLog(_LOG, every=1.0)  # an audit line, but not a flood

HOOK_IDS_KEY = web.AppKey("hook_ids", dict[tuple[str, str], "asyncio.Future[bool]"])

# ---------------------------------------------------------------------- handlers


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[CONTROL_KEY].ready:
        return json_response({"status": "ready"})
    return error(503, "not_ready", "starting or reloading")


def _views(views: Mapping[str, BaseModel]) -> dict[str, Any]:
    return {name: view.model_dump(exclude_unset=True) for name, view in views.items()}


def _named(request: web.Request, items: Mapping[str, Any], what: str) -> str:
    """The ``{id}`` of the request, which must be one of ``items`` (else 404)."""
    name = request.match_info["id"]
    if name not in items:
        raise NotFound(f"no {what} named {name!r}")
    return name


async def status(request: web.Request) -> web.Response:
    view = await request.app[CONTROL_KEY].status()
    return json_response(view.model_dump(exclude_unset=True))


async def list_sensors(request: web.Request) -> web.Response:
    return json_response(_views(request.app[CONTROL_KEY].sensors()))


async def get_sensor(request: web.Request) -> web.Response:
    view = request.app[CONTROL_KEY].sensor(request.match_info["id"])
    return json_response(view.model_dump(exclude_unset=True))


async def post_sensor(request: web.Request) -> web.Response:
    control = request.app[CONTROL_KEY]
    name = _named(request, control.config.sensors, "sensor")  # 404 before reading the body
    body = await read_json(request, SensorWrite)
    view = await control.set_sensor(name, body.value, who(request))
    return json_response(view.model_dump(exclude_unset=True))


async def list_actuators(request: web.Request) -> web.Response:
    return json_response(_views(request.app[CONTROL_KEY].actuators()))


async def get_actuator(request: web.Request) -> web.Response:
    view = request.app[CONTROL_KEY].actuator(request.match_info["id"])
    return json_response(view.model_dump(exclude_unset=True))


async def post_actuator(request: web.Request) -> web.Response:
    control = request.app[CONTROL_KEY]
    name = _named(request, control.config.actuators, "actuator")
    body = await read_json(request, ActuatorWrite)
    view = control.switch(name, body.state, body.for_, who(request))
    return json_response(view.model_dump(exclude_unset=True))


async def metrics(request: web.Request) -> web.Response:
    text = await request.app[CONTROL_KEY].metrics()
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def outbox(request: web.Request) -> web.Response:
    return json_response(await request.app[CONTROL_KEY].outbox_view())


async def list_messages(request: web.Request) -> web.Response:
    try:
        query = MessageQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise web.HTTPUnprocessableEntity(text=describe_errors(exc, "query")) from None
    box = request.app[CONTROL_KEY].outbox
    found = await box.messages(query.state, query.endpoint, query.limit)
    return json_response({"messages": found})


async def get_message(request: web.Request) -> web.Response:
    msg_id = request.match_info["id"]
    message = await request.app[CONTROL_KEY].outbox.message(msg_id)
    if message is None:
        raise NotFound(f"no message {msg_id!r} in the outbox")
    return json_response(message)


async def retry_message(request: web.Request) -> web.Response:
    msg_id = request.match_info["id"]
    if not await request.app[CONTROL_KEY].outbox.retry(msg_id):
        raise NotFound(f"no message {msg_id!r} in the outbox")
    return json_response({"id": msg_id, "state": "pending"})


async def enable_endpoint(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await request.app[CONTROL_KEY].enable_endpoint(name)
    return json_response({"endpoint": name, "disabled": False})


async def post_hook(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    control = request.app[CONTROL_KEY]
    config = control.hook(name)
    address, door = request[ADDRESS_KEY], f"hook {name}"
    credential = request.headers.get(config.credential_header, "")
    if (refusal := blocked(request, door, credential)) is not None:
        return refusal
    body = await read_body(request)
    try:
        msg_id = check_request(config, request.headers, body, time.time())
    except Unverified as exc:
        control.hooks[(name, "rejected")] += 1
        failed(request, door, credential)
        _REJECTED_HOOK_LOG.warning("hook %s: rejected a request from %s: %s", name, address, exc)
        return error(401, "unauthorized", f"verification failed: {exc}")
    try:
        payload = parse_body(body, request.content_type if request.body_exists else "")
        check_payload(config, payload)
    except web.HTTPException:
        control.hooks[(name, "invalid")] += 1
        raise
    busy = request.app[HOOK_IDS_KEY]
    key = (name, msg_id)
    if key in busy:  # a copy is being handled right now: answer as it will be answered
        if not await asyncio.shield(busy[key]):
            raise OutboxError("the first copy of this delivery could not be stored")
        return _duplicate(name, msg_id, address)
    # checked and marked with no await between: concurrent copies cannot both pass
    handled: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    busy[key] = handled
    try:
        if await control.hook_seen(name, msg_id):
            handled.set_result(True)
            return _duplicate(name, msg_id, address)
        event = HookReceived(
            hook=name,
            id=msg_id,
            payload=payload,
            query=dict(request.query),
            headers={h: request.headers[h] for h in config.headers if h in request.headers},
            time=time.time(),
            source=address,
        )
        await control.accept_hook(event)
        handled.set_result(True)
    finally:
        if not handled.done():
            handled.set_result(False)
        del busy[key]
    return json_response({"id": msg_id}, status=202)


def _duplicate(name: str, msg_id: str, address: str) -> web.Response:
    _LOG.info("hook %s: %s from %s was already handled: not acted on again", name, msg_id, address)
    return json_response({"id": msg_id, "duplicate": True})


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.app[CONTROL_KEY].config))


def make_app(
    control: Control,
    tokens: TokenTable,
    policy: AccessPolicy | None = None,
    sessions: Sessions | None = None,
) -> web.Application:
    """The aiohttp application; the caller runs it (``web.AppRunner``)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors, access, bearer_auth])
    app[CONTROL_KEY] = control
    app[TOKENS_KEY] = tokens
    app[SESSIONS_KEY] = sessions or Sessions(tokens)
    app[ACCESS_KEY] = policy or AccessPolicy()
    app[HOOK_IDS_KEY] = {}
    app[SCOPES_KEY] = {}
    for method, path, handler, scope in ROUTES:
        app.router.add_route(method, path, handler)
        if scope is not None:
            app[SCOPES_KEY][handler] = scope
    return app


ROUTES: tuple[tuple[str, str, Handler, Scope | None], ...] = (
    # path, handler, and the scope a token needs (None: no bearer token, see the middleware)
    ("GET", "/healthz", healthz, None),
    ("GET", "/readyz", readyz, None),
    ("GET", "/metrics", metrics, Scope.READ),
    ("GET", "/api/v1/status", status, Scope.READ),
    ("GET", "/api/v1/sensors", list_sensors, Scope.READ),
    ("GET", "/api/v1/sensors/{id}", get_sensor, Scope.READ),
    ("POST", "/api/v1/sensors/{id}", post_sensor, Scope.SET_SENSOR),
    ("GET", "/api/v1/actuators", list_actuators, Scope.READ),
    ("GET", "/api/v1/actuators/{id}", get_actuator, Scope.READ),
    ("POST", "/api/v1/actuators/{id}", post_actuator, Scope.SWITCH_ACTUATOR),
    ("GET", "/api/v1/outbox", outbox, Scope.READ_OUTBOX),
    ("GET", "/api/v1/outbox/messages", list_messages, Scope.READ_OUTBOX),  # before {id}
    ("GET", "/api/v1/outbox/{id}", get_message, Scope.READ_OUTBOX),
    ("POST", "/api/v1/outbox/{id}/retry", retry_message, Scope.CHANGE_OUTBOX),
    ("POST", "/api/v1/outbox/endpoints/{name}/enable", enable_endpoint, Scope.CHANGE_OUTBOX),
    ("GET", "/api/v1/openapi.json", openapi, Scope.READ),
    ("POST", "/hooks/{name}", post_hook, None),
    *looking.ROUTES,
    *dashboard.ROUTES,
    *((method, path, handler, None) for method, path, handler in dashboard.PAGES),
)
