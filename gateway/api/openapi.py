"""The OpenAPI 3.1 document, built from the models that validate the requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway import __version__
from gateway.api.models import (
    ActuatorView,
    ActuatorWrite,
    ErrorBody,
    HookAccepted,
    OutboxView,
    SensorAccepted,
    SensorView,
    SensorWrite,
    StatusView,
)

MODELS: list[type[BaseModel]] = [
    SensorWrite,
    ActuatorWrite,
    SensorView,
    SensorAccepted,
    ActuatorView,
    StatusView,
    OutboxView,
    HookAccepted,
    ErrorBody,
]

_ERRORS = {
    "400": "Malformed JSON",
    "401": "Missing or wrong credentials",
    "403": "Not allowed for this token or address",
    "404": "No such thing",
    "405": "Method not allowed",
    "409": "Not possible in this state",
    "413": "Body larger than 64 KiB",
    "415": "Not JSON",
    "422": "Invalid body",
    "429": "Too many requests (see Retry-After)",
    "503": "Busy (see Retry-After)",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    ok: tuple[str, dict[str, Any], str],
    errors: tuple[str, ...],
    body: type[BaseModel] | None = None,
    params: tuple[str, ...] = (),
    secured: bool = True,
) -> dict[str, Any]:
    status, schema, description = ok
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {status: _json(schema, description)}
        | {code: _json(_ref(ErrorBody), _ERRORS[code]) for code in errors},
    }
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if not secured:
        op["security"] = []
    return op


@cache
def openapi_document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "validation") for m in MODELS], ref_template="#/components/schemas/{model}"
    )
    common = ("401", "403", "429")
    read = (*common,)
    write = (*common, "400", "404", "413", "415", "422")
    obj = {"type": "object", "additionalProperties": _ref(SensorView)}
    acts = {"type": "object", "additionalProperties": _ref(ActuatorView)}
    paths = {
        "/healthz": {
            "get": _op("Liveness", ("200", {"type": "object"}, "Alive"), (), secured=False)
        },
        "/readyz": {"get": _op("Readiness", ("200", {"type": "object"}, "Ready"), ("503",))},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": _json(_ref(ErrorBody), _ERRORS["401"]),
                },
            }
        },
        "/api/v1/status": {"get": _op("Gateway status", ("200", _ref(StatusView), "Status"), read)},
        "/api/v1/sensors": {"get": _op("All sensors", ("200", obj, "Sensors by id"), read)},
        "/api/v1/sensors/{id}": {
            "get": _op(
                "One sensor",
                ("200", _ref(SensorView), "The sensor"),
                (*read, "404"),
                params=("id",),
            ),
            "post": _op(
                "Inject a reading (virtual or simulated sensors)",
                ("200", _ref(SensorAccepted), "Accepted; its webhooks are committed"),
                (*write, "409"),
                body=SensorWrite,
                params=("id",),
            ),
        },
        "/api/v1/actuators": {"get": _op("All actuators", ("200", acts, "Actuators by id"), read)},
        "/api/v1/actuators/{id}": {
            "get": _op(
                "One actuator",
                ("200", _ref(ActuatorView), "The actuator"),
                (*read, "404"),
                params=("id",),
            ),
            "post": _op(
                "Switch an actuator",
                ("200", _ref(ActuatorView), "The new state"),
                write,
                body=ActuatorWrite,
                params=("id",),
            ),
        },
        "/api/v1/outbox": {"get": _op("Outbox state", ("200", _ref(OutboxView), "Outbox"), read)},
        "/api/v1/outbox/{id}/retry": {
            "post": _op(
                "Send a webhook again now",
                ("200", {"type": "object"}, "Will be sent"),
                (*common, "404"),
                params=("id",),
            )
        },
        "/api/v1/outbox/endpoints/{name}/enable": {
            "post": _op(
                "Re-enable an endpoint disabled by 410 Gone",
                ("200", {"type": "object"}, "Enabled"),
                (*common, "404"),
                params=("name",),
            )
        },
        "/hooks/{name}": {
            "post": {
                **_op(
                    "Inbound webhook: verified per hook, then fires `when: {hook: name}` rules",
                    ("202", _ref(HookAccepted), "Accepted"),
                    ("400", "401", "404", "413", "415", "429"),
                    params=("name",),
                    secured=False,
                ),
                "requestBody": {"required": False, "content": {"application/json": {"schema": {}}}},
            }
        },
        "/api/v1/openapi.json": {
            "get": _op("This document", ("200", {"type": "object"}, "OpenAPI 3.1"), read)
        },
    }
    paths["/hooks/{name}"]["post"]["responses"]["200"] = _json(
        _ref(HookAccepted), "A duplicate delivery: already acted on"
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Edge Gateway",
            "version": __version__,
            "description": "Sensors, actuators, the webhook outbox and inbound hooks.",
        },
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
