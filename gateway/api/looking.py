"""The API's handlers for looking inside: rules and traces, history, the log level."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from gateway.api.auth import Scope
from gateway.api.insight import HistoryQuery, LogLevel
from gateway.api.middleware import (
    CONTROL_KEY,
    Handler,
    describe_errors,
    json_response,
    read_json,
    who,
)
from gateway.control import Control
from gateway.errors import InvalidValue, NotFound
from gateway.localtime import iso_utc
from gateway.rulecontrol import trace_view

_LOG = logging.getLogger(__name__)


def _control(request: web.Request) -> Control:
    return request.app[CONTROL_KEY]


async def list_rules(request: web.Request) -> web.Response:
    return json_response(_control(request).rules.views())


async def get_rule(request: web.Request) -> web.Response:
    return json_response(_control(request).rules.get(request.match_info["id"]))


async def rule_traces(request: web.Request) -> web.Response:
    rule = request.match_info["id"]
    traces = _control(request).rules.traces(rule)
    return json_response({"rule": rule, "traces": [trace_view(t) for t in traces]})


async def enable_rule(request: web.Request) -> web.Response:
    rules = _control(request).rules
    return json_response(rules.enable(request.match_info["id"], True, who(request)))


async def disable_rule(request: web.Request) -> web.Response:
    rules = _control(request).rules
    return json_response(rules.enable(request.match_info["id"], False, who(request)))


async def run_rule(request: web.Request) -> web.Response:
    trace = await _control(request).rules.run(request.match_info["id"], who(request))
    return json_response(trace_view(trace) if trace is not None else None)


def _moment(value: float | str | None, default: float, name: str) -> float:
    if value is None:
        return default
    try:
        return _within(float(value), name)  # Unix seconds (a number, or text of one)
    except ValueError:
        value = str(value)
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(f"{name}: not ISO 8601 nor Unix seconds: {value[:40]!r}") from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()  # the gateway's local time
        return _within(moment.timestamp(), name)
    except (OverflowError, OSError, ValueError):  # year 1 in a zone east of UTC
        raise InvalidValue(f"{name}: {value[:40]!r} is not a time between 1970 and 9999") from None


LATEST = 253402300799.0  # 9999-12-31T23:59:59Z: the last time ISO 8601 writes down


def _within(moment: float, name: str) -> float:
    if not 0 <= moment <= LATEST:  # also NaN
        raise InvalidValue(f"{name}: {moment:g} is not a time between 1970 and 9999")
    return moment


def _window(request: web.Request) -> tuple[float, float, int]:
    try:
        query = HistoryQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise web.HTTPUnprocessableEntity(text=describe_errors(exc, "query")) from None
    until = _moment(query.until, time.time(), "until")
    since = _moment(query.since, until - 86400, "since")
    if since > until:
        raise InvalidValue("since is after until")
    return since, until, query.limit


async def sensor_history(request: web.Request) -> web.Response:
    control = _control(request)
    name = request.match_info["id"]
    control.sensor(name)  # 404 for no such sensor
    since, until, limit = _window(request)
    points = await control.recorder.readings(name, since, until, limit)
    for point in points:
        point["t"] = iso_utc(point["t"])
    return json_response(_between(name, since, until) | {"points": points})


async def actuator_history(request: web.Request) -> web.Response:
    control = _control(request)
    name = request.match_info["id"]
    control.actuator(name)
    since, until, limit = _window(request)
    switches = await control.recorder.switches(name, since, until, limit)
    for switch in switches:
        switch["t"] = iso_utc(switch["t"])
    return json_response(_between(name, since, until) | {"switches": switches})


def _between(name: str, since: float, until: float) -> dict[str, Any]:
    return {"id": name, "since": iso_utc(since), "until": iso_utc(until)}


async def get_log_level(request: web.Request) -> web.Response:
    level = logging.getLogger().getEffectiveLevel()
    return json_response({"level": logging.getLevelName(level).lower(), "logger": None})


async def set_log_level(request: web.Request) -> web.Response:
    body: LogLevel = await read_json(request, LogLevel)
    name = body.logger
    if name is not None and (name != "gateway" and not name.startswith("gateway.")):
        raise NotFound(f"no logger {name!r} (the gateway's are gateway.*)")
    logger = logging.getLogger(name)  # None: the root, which every handler hangs on
    logger.setLevel(body.level.upper())
    _LOG.warning("log level of %s set to %s by %s", name or "the gateway", body.level, who(request))
    return json_response({"level": body.level, "logger": name})


async def events(request: web.Request) -> web.StreamResponse:
    return await _control(request).events.serve(request)


ROUTES: tuple[tuple[str, str, Handler, Scope | None], ...] = (
    ("GET", "/api/v1/rules", list_rules, Scope.READ),
    ("GET", "/api/v1/rules/{id}", get_rule, Scope.READ),
    ("GET", "/api/v1/rules/{id}/traces", rule_traces, Scope.READ),
    ("POST", "/api/v1/rules/{id}/enable", enable_rule, Scope.MANAGE),
    ("POST", "/api/v1/rules/{id}/disable", disable_rule, Scope.MANAGE),
    ("POST", "/api/v1/rules/{id}/run", run_rule, Scope.MANAGE),
    ("GET", "/api/v1/sensors/{id}/history", sensor_history, Scope.READ),
    ("GET", "/api/v1/actuators/{id}/history", actuator_history, Scope.READ),
    ("GET", "/api/v1/log-level", get_log_level, Scope.READ),
    ("POST", "/api/v1/log-level", set_log_level, Scope.MANAGE),
    ("GET", "/api/v1/events", events, Scope.READ),
)
