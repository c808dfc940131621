"""The OpenAPI paths of :mod:`gateway.api.looking`: rules, traces, history, log level."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from gateway.api.insight import (
    ActuatorHistory,
    HistoryQuery,
    LogLevel,
    RuleEnabled,
    RuleView,
    SensorHistory,
    TraceList,
    TraceView,
)

MODELS: list[type[BaseModel]] = [
    RuleView,
    TraceView,
    TraceList,
    RuleEnabled,
    SensorHistory,
    ActuatorHistory,
    LogLevel,
]

OPERATION_IDS = {
    ("/api/v1/rules", "get"): "listRules",
    ("/api/v1/rules/{id}", "get"): "getRule",
    ("/api/v1/rules/{id}/traces", "get"): "listRuleTraces",
    ("/api/v1/rules/{id}/enable", "post"): "enableRule",
    ("/api/v1/rules/{id}/disable", "post"): "disableRule",
    ("/api/v1/rules/{id}/run", "post"): "runRule",
    ("/api/v1/sensors/{id}/history", "get"): "getSensorHistory",
    ("/api/v1/actuators/{id}/history", "get"): "getActuatorHistory",
    ("/api/v1/log-level", "get"): "getLogLevel",
    ("/api/v1/log-level", "post"): "setLogLevel",
    ("/api/v1/events", "get"): "streamEvents",
}


def paths(
    op: Callable[..., dict[str, Any]],
    ref: Callable[[Any], dict[str, str]],
    param: Callable[[str, list[str]], dict[str, Any]],
    query: tuple[dict[str, Any], ...],
    authed: tuple[str, ...],
    ids: dict[str, list[str]],
    errors: dict[str, Any],
) -> dict[str, Any]:
    """The paths, built with the document's own helpers (``_op``, ``_ref``, ...)."""
    rule, sensor, actuator = (param("id", ids[k]) for k in ("rules", "sensors", "actuators"))
    found = (*authed, "404")

    def manage(summary: str, answer: dict[str, Any], text: str) -> dict[str, Any]:
        return {"post": op(summary, ("200", answer, text), found, params=(rule,))}

    return {
        "/api/v1/rules": {
            "get": op(
                "All rules: enabled, last triggered, last result, runs going",
                ("200", {"type": "object", "additionalProperties": ref(RuleView)}, "By id"),
                authed,
            )
        },
        "/api/v1/rules/{id}": {
            "get": op("One rule", ("200", ref(RuleView), "The rule"), found, params=(rule,))
        },
        "/api/v1/rules/{id}/traces": {
            "get": op(
                "The rule's last traces (history.traces of them), newest first",
                ("200", ref(TraceList), "Its traces"),
                found,
                params=(rule,),
            )
        },
        "/api/v1/rules/{id}/enable": manage(
            "Enable a rule (kept across restarts until its config changes)",
            ref(RuleEnabled),
            "Enabled",
        ),
        "/api/v1/rules/{id}/disable": manage(
            "Disable a rule (kept across restarts until its config changes)",
            ref(RuleEnabled),
            "Disabled",
        ),
        "/api/v1/rules/{id}/run": manage(
            "Run the rule's actions now (conditions and cooldown are not looked at)",
            {"anyOf": [ref(TraceView), {"type": "null"}]},
            "Its trace; what it queued is committed",
        ),
        "/api/v1/sensors/{id}/history": {
            "get": op(
                "A sensor's readings (numeric: mean, min and max per history.resolution)",
                ("200", ref(SensorHistory), "Oldest first"),
                (*found, "422"),
                params=(sensor, *query),
            )
        },
        "/api/v1/actuators/{id}/history": {
            "get": op(
                "An actuator's switches and who made them",
                ("200", ref(ActuatorHistory), "Oldest first"),
                (*found, "422"),
                params=(actuator, *query),
            )
        },
        "/api/v1/events": {
            "get": {
                "summary": "Live events as Server-Sent Events: sensor, actuator (with who), "
                "trace, webhook (queued, delivered, failed, dead), input, log (warnings)",
                "responses": {
                    "200": {
                        "description": "event: KIND, data: a JSON object with its time",
                        "content": {
                            "text/event-stream": {
                                "schema": {
                                    "type": "object",
                                    "description": "One event: its kind and its JSON data",
                                    "properties": {
                                        "event": {"type": "string"},
                                        "data": {"type": "string"},
                                    },
                                }
                            }
                        },
                    }
                }
                | {code: errors[code] for code in sorted(authed)},
            }
        },
        "/api/v1/log-level": {
            "get": op("The log level", ("200", ref(LogLevel), "The level"), authed),
            "post": op(
                "Change the log level now (until the next restart)",
                ("200", ref(LogLevel), "Changed"),
                (*authed, "400", "404", "413", "415", "422"),
                body=ref(LogLevel),
            ),
        },
    }


QUERY = HistoryQuery
