"""The OpenAPI 3.1 document, built from the models that validate the requests.

It describes this gateway: path parameters list its sensors, actuators and
hooks as examples, and each configured hook has its own path with the
headers its verification needs and the ``schema`` its body must match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway import __version__
from gateway.api import openapi_looking as looking
from gateway.api.models import (
    ActuatorView,
    ActuatorWrite,
    EndpointEnabled,
    ErrorBody,
    Health,
    HookAccepted,
    MessageDetail,
    MessageList,
    MessageQuery,
    OutboxView,
    RetryAccepted,
    SensorAccepted,
    SensorView,
    SensorWrite,
    StatusView,
)
from gateway.api.outbound import outbound
from gateway.config.actions import WebhookAction
from gateway.config.models import GatewayConfig

MODELS: list[type[BaseModel]] = [
    SensorWrite,
    ActuatorWrite,
    SensorView,
    SensorAccepted,
    ActuatorView,
    StatusView,
    OutboxView,
    HookAccepted,
    Health,
    MessageList,
    MessageDetail,
    RetryAccepted,
    EndpointEnabled,
    ErrorBody,
    *looking.MODELS,
]

ERRORS = {
    "400": "Malformed JSON",
    "401": "Missing or wrong credentials",
    "403": "Not allowed for this token, or the address is not in server.allow",
    "404": "No such thing",
    "405": "Method not allowed (see Allow)",
    "408": "The body did not arrive within server.body_timeout",
    "409": "Not possible in this state (a real device cannot be set)",
    "413": "Body larger than 64 KiB",
    "415": "Not JSON",
    "422": "Invalid body or query: the message names the field",
    "429": "Too many requests, or too many failed verifications (see Retry-After)",
    "503": "Too many requests in flight, not ready, or what it caused could not be stored"
    " (see Retry-After)",
}
OUTER = ("403", "429", "503")
"""Answers any path may get: allowlist, rate limits, the in-flight bound."""
AUTHED = (*OUTER, "401")
WRITE = (*AUTHED, "400", "404", "408", "413", "415", "422")

HOOK_HEADERS = {
    "standard-webhooks": [
        ("webhook-id", "The delivery id; a repeat within server.replay_window is not acted on"),
        ("webhook-timestamp", "Unix seconds; within 5 minutes of the gateway's clock"),
        ("webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body> (space-separated)"),
    ],
    "github": [("X-Hub-Signature-256", "sha256=<hex HMAC-SHA256 of the body>")],
}


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str, examples: Iterable[str]) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "path", "required": True}
    param["schema"] = {"type": "string", "pattern": "^[^/]+$"}
    if found := sorted(examples):
        param["examples"] = {value: {"value": value} for value in found}
    return param


def _query_params(model: type[BaseModel]) -> tuple[dict[str, Any], ...]:
    """Query parameters from the fields of ``model`` (which validates them)."""
    params = []
    for name, prop in model.model_json_schema()["properties"].items():
        options = [o for o in prop.pop("anyOf", []) if o != {"type": "null"}]
        if prop.get("default", 0) is None:
            del prop["default"]
        schema = {**prop, **options[0]} if options else prop
        params.append({"name": name, "in": "query", "required": False, "schema": schema})
    return tuple(params)


def _op(
    summary: str,
    ok: tuple[str, dict[str, Any], str],
    errors: tuple[str, ...],
    body: dict[str, Any] | None = None,
    params: tuple[dict[str, Any], ...] = (),
    secured: bool = True,
) -> dict[str, Any]:
    status, schema, description = ok
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {status: _json(schema, description)}
        | {code: _json(_ref(ErrorBody), ERRORS[code]) for code in sorted(errors)},
    }
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if not secured:
        op["security"] = []
    return op


def _hook(name: str, hook: dict[str, Any]) -> dict[str, Any]:
    """``POST /hooks/NAME`` for one configured hook (``verify``, ``header``, ``schema``)."""
    verify, header, schema = hook["verify"], hook["header"], hook.get("schema")
    params: list[dict[str, Any]] = [
        {"name": header, "in": "header", "required": True, "schema": {"type": "string"}}
        | {"description": text}
        for header, text in HOOK_HEADERS.get(verify, [])
    ]
    if verify == "token":
        text = "Bearer <token>" if header.lower() == "authorization" else "the token"
        params.append(
            {"name": header, "in": "header", "required": True, "schema": {"type": "string"}}
            | {"description": text}
        )
    op = _op(
        f"Inbound webhook {name!r} (verify: {verify}); fires `when: {{hook: {name}}}`",
        ("202", _ref(HookAccepted), "Verified and acted on"),
        (*OUTER, "400", "401", "408", "413", "415", *(("422",) if schema else ())),
        params=tuple(params),
        secured=False,
    )
    op["requestBody"] = {
        "required": False,
        "content": {"application/json": {"schema": schema or {}}},
    }
    op["responses"]["200"] = _json(_ref(HookAccepted), "A repeated delivery id: not acted on")
    return op


OPERATION_IDS = {
    ("/healthz", "get"): "getHealth",
    ("/readyz", "get"): "getReadiness",
    ("/metrics", "get"): "getMetrics",
    ("/api/v1/status", "get"): "getStatus",
    ("/api/v1/sensors", "get"): "listSensors",
    ("/api/v1/sensors/{id}", "get"): "getSensor",
    ("/api/v1/sensors/{id}", "post"): "setSensor",
    ("/api/v1/actuators", "get"): "listActuators",
    ("/api/v1/actuators/{id}", "get"): "getActuator",
    ("/api/v1/actuators/{id}", "post"): "switchActuator",
    ("/api/v1/outbox", "get"): "getOutbox",
    ("/api/v1/outbox/messages", "get"): "listOutboxMessages",
    ("/api/v1/outbox/{id}", "get"): "getOutboxMessage",
    ("/api/v1/outbox/{id}/retry", "post"): "retryOutboxMessage",
    ("/api/v1/outbox/endpoints/{name}/enable", "post"): "enableEndpoint",
    ("/api/v1/openapi.json", "get"): "getOpenApi",
    ("/hooks/{name}", "post"): "receiveHook",
    **looking.OPERATION_IDS,
}
"""Stable names for code generators (a configured hook's path gets receiveHook_NAME)."""


def openapi_document(config: GatewayConfig | None = None) -> dict[str, Any]:
    """The document for ``config`` (None: without the gateway's own names and hooks)."""
    if config is None:
        return json.loads(_document("[]", "[]", "[]", "[]", "{}", "[]", "[]"))  # type: ignore[no-any-return]
    hooks = {
        name: hook.model_dump(mode="json", by_alias=True, include={"verify", "header", "schema_"})
        for name, hook in config.server.hooks.items()
    }
    return json.loads(  # type: ignore[no-any-return]
        _document(
            json.dumps(sorted(config.sensors)),
            json.dumps(sorted(config.actuators)),
            json.dumps(sorted(config.webhooks)),
            json.dumps(sorted(config.server.hooks)),
            json.dumps(hooks, sort_keys=True),
            json.dumps(
                sorted(
                    {a.event for r in config.rules for a in r.then if isinstance(a, WebhookAction)}
                )
            ),
            json.dumps(sorted(rule.id for rule in config.rules)),
        )
    )


@lru_cache(maxsize=4)
def _document(
    sensors: str,
    actuators: str,
    endpoints: str,
    hook_names: str,
    hooks: str,
    events: str,
    rules: str,
) -> str:
    """The document as JSON text (cached per config: reloads change it)."""
    _, defs = models_json_schema(
        [(m, "validation") for m in MODELS], ref_template="#/components/schemas/{model}"
    )
    sensor_id = _path_param("id", json.loads(sensors))
    actuator_id = _path_param("id", json.loads(actuators))
    paths: dict[str, Any] = {
        "/healthz": {
            "get": _op(
                "Liveness (no token, no rate limit)",
                ("200", _ref(Health), "Alive"),
                ("403", "503"),
                secured=False,
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness (no token): 503 while starting or reloading",
                ("200", _ref(Health), "Ready"),
                OUTER,
                secured=False,
            )
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                }
                | {code: _json(_ref(ErrorBody), ERRORS[code]) for code in sorted(AUTHED)},
            }
        },
        "/api/v1/status": {
            "get": _op("Gateway status", ("200", _ref(StatusView), "Status"), AUTHED)
        },
        "/api/v1/sensors": {
            "get": _op(
                "All sensors",
                ("200", {"type": "object", "additionalProperties": _ref(SensorView)}, "By id"),
                AUTHED,
            )
        },
        "/api/v1/sensors/{id}": {
            "get": _op(
                "One sensor",
                ("200", _ref(SensorView), "The sensor"),
                (*AUTHED, "404"),
                params=(sensor_id,),
            ),
            "post": _op(
                "Inject a reading (virtual sensors, or any sensor in simulation)",
                ("200", _ref(SensorAccepted), "Accepted; the webhooks it caused are committed"),
                (*WRITE, "409"),
                body=_ref(SensorWrite),
                params=(sensor_id,),
            ),
        },
        "/api/v1/actuators": {
            "get": _op(
                "All actuators",
                ("200", {"type": "object", "additionalProperties": _ref(ActuatorView)}, "By id"),
                AUTHED,
            )
        },
        "/api/v1/actuators/{id}": {
            "get": _op(
                "One actuator",
                ("200", _ref(ActuatorView), "The actuator"),
                (*AUTHED, "404"),
                params=(actuator_id,),
            ),
            "post": _op(
                "Switch an actuator (403 when the token may not)",
                ("200", _ref(ActuatorView), "The new state"),
                WRITE,
                body=_ref(ActuatorWrite),
                params=(actuator_id,),
            ),
        },
        "/api/v1/outbox": {"get": _op("Outbox state", ("200", _ref(OutboxView), "Outbox"), AUTHED)},
        "/api/v1/outbox/messages": {
            "get": _op(
                "Queued and dead webhooks, oldest first",
                ("200", _ref(MessageList), "The messages"),
                (*AUTHED, "422"),
                params=_query_params(MessageQuery),
            )
        },
        "/api/v1/outbox/{id}": {
            "get": _op(
                "One webhook: its exact body and its failed attempts",
                ("200", _ref(MessageDetail), "The message"),
                (*AUTHED, "404"),
                params=(_path_param("id", []),),
            )
        },
        "/api/v1/outbox/{id}/retry": {
            "post": _op(
                "Send a pending or dead webhook again now",
                ("200", _ref(RetryAccepted), "Will be sent"),
                (*AUTHED, "404"),
                params=(_path_param("id", []),),
            )
        },
        "/api/v1/outbox/endpoints/{name}/enable": {
            "post": _op(
                "Re-enable an endpoint disabled by 410 Gone",
                ("200", _ref(EndpointEnabled), "Enabled"),
                (*AUTHED, "404"),
                params=(_path_param("name", json.loads(endpoints)),),
            )
        },
        "/api/v1/openapi.json": {
            "get": _op("This document", ("200", {"type": "object"}, "OpenAPI 3.1"), AUTHED)
        },
        "/hooks/{name}": {
            "post": _op(
                "Inbound webhook, verified as its hook says (see the paths of each hook)",
                ("202", _ref(HookAccepted), "Verified and acted on"),
                (*OUTER, "400", "401", "404", "408", "413", "415", "422"),
                params=(_path_param("name", json.loads(hook_names)),),
                secured=False,
            )
        },
    }
    ids = {k: json.loads(v) for k, v in (("sensors", sensors), ("actuators", actuators))}
    ids["rules"] = json.loads(rules)
    answers = {code: _json(_ref(ErrorBody), ERRORS[code]) for code in ERRORS}
    query = _query_params(looking.QUERY)
    paths |= looking.paths(_op, _ref, _path_param, query, AUTHED, ids, answers)
    paths["/hooks/{name}"]["post"]["requestBody"] = {
        "required": False,
        "content": {"application/json": {"schema": {}}},
    }
    paths["/hooks/{name}"]["post"]["responses"]["200"] = _json(
        _ref(HookAccepted), "A repeated delivery id: not acted on"
    )
    for name, hook in json.loads(hooks).items():
        paths[f"/hooks/{name}"] = {"post": _hook(name, hook)}
    for path, methods in paths.items():
        for method, op in methods.items():
            op["operationId"] = OPERATION_IDS.get((path, method)) or (
                "receiveHook_" + path.removeprefix("/hooks/")
            )
    return json.dumps(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "Edge Gateway",
                "version": __version__,
                "description": "Sensors, actuators, the webhook outbox and inbound hooks. "
                "Errors are {error: {code, message}}.",
                "license": {"name": "MIT", "identifier": "MIT"},
            },
            "servers": [{"url": "/", "description": "This gateway"}],
            "components": {
                "schemas": defs.get("$defs", {}),
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
            "paths": paths,
            "webhooks": outbound(json.loads(events)),
        }
    )
