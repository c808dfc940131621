"""What a firing rule sees and does: its event as template variables, and its actions as decisions.

Pure functions of the engine, kept apart so that the engine module holds
only the triggering logic.
"""

from __future__ import annotations

import json
import logging
from typing import Any, assert_never

from gateway.config.actions import (
    Action,
    ActuateAction,
    DelayAction,
    LogAction,
    MqttPublishAction,
    SerialWriteAction,
    WebhookAction,
)
from gateway.config.outbound import NotifyAction
from gateway.config.rules import Rule
from gateway.config.types import parse_binary
from gateway.events import Event, GatewayStarted, HookReceived, MqttReceived, SensorChanged
from gateway.localtime import iso_utc
from gateway.rules.decisions import (
    Decision,
    PublishMqtt,
    SendWebhook,
    SetActuator,
    Snapshot,
    WriteLog,
    WriteSerial,
)
from gateway.rules.traces import TraceStep
from gateway.rules.values import switched_state
from gateway.templates import TemplateError, as_text, render, render_text, render_tree

_LOG = logging.getLogger(__name__)


def iso_time(moment: float, snap: Snapshot) -> str:
    """``event.time``: the format of the envelope's ``timestamp`` (UTC, ms, ``Z``);
    ``now()`` and time conditions are the local time."""
    return iso_utc(moment)


def event_vars(event: Event, snap: Snapshot) -> dict[str, Any]:
    """What templates see as ``event``: plain values only (it is saved with timers)."""
    match event:
        case SensorChanged():
            return {
                "trigger": "sensor",
                "sensor": event.sensor,
                "group": event.group,  # the split sensor it is a member of, or None
                "value": event.value,
                "previous": event.previous,
                "time": iso_time(event.time, snap),
                "source": event.source,
            }
        case MqttReceived():
            return {
                "trigger": "mqtt",
                "topic": event.topic,
                "payload": event.payload,
                "time": iso_time(event.time, snap),
                "source": "mqtt",
            }
        case HookReceived():
            return {
                "trigger": "hook",
                "hook": event.hook,
                "id": event.id,
                "payload": event.payload,
                "query": dict(event.query),
                "headers": dict(event.headers),
                "time": iso_time(event.time, snap),
                "source": event.source,
            }
        case GatewayStarted():
            return {"trigger": "startup", "time": iso_time(event.time, snap), "source": "startup"}
        case _:
            assert_never(event)


def describe(event: dict[str, Any]) -> str:
    if event.get("trigger") == "mqtt":
        return f"mqtt {event['topic']}"
    if event.get("trigger") == "hook":
        return f"hook {event['hook']} {event['id']} from {event['source']}"
    if event.get("trigger") == "manual":
        return f"run now by {event['source']}"
    if event.get("trigger") == "sensor":
        value = event["value"]
        shown = ("on" if value else "off") if isinstance(value, bool) else value
        return f"{event['sensor']}={shown} ({event['source']})"
    return str(event.get("trigger"))


def template_context(rule: Rule, event: dict[str, Any], snap: Snapshot) -> dict[str, Any]:
    """What templates see: ``event``, ``sensors``, ``actuators``, ``rule``, ``gateway``."""
    return {
        "event": dict(event),
        "sensors": dict(snap.sensors),
        "actuators": dict(snap.actuators),
        "rule": {"id": rule.id, "description": rule.description},
        "gateway": {"name": snap.gateway_name},
    }


def _state_from(value: Any, source: str) -> bool | float | str:
    """A rendered ``state:`` template as a state: on/off words, toggle, a level 0..1."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, float) and 0 <= value <= 1:
        return value
    text = str(value).strip().lower()
    if text == "toggle":
        return "toggle"
    try:
        return parse_binary(text)
    except ValueError:
        pass
    try:
        level = float(text)
    except ValueError:
        level = -1.0
    if 0 <= level <= 1:
        return level
    raise TemplateError(f"state {source!r} gave {str(value)[:60]!r}: not on, off, toggle or 0..1")


def decide_action(
    rule: Rule, action: Action, context: dict[str, Any], step: TraceStep | None = None
) -> Decision | None:
    """What one action does, its templates rendered (None: a delay, or a template error,
    said in ``step``). The decision carries ``step`` for the runtime to fill in."""
    try:
        match action:
            case ActuateAction():
                cause = describe(context["event"])
                state = action.state
                if isinstance(state, str) and state != "toggle":
                    state = _state_from(render(state, context), state)
                states = context["actuators"]  # what later templates of this run see
                states[action.actuate] = switched_state(states.get(action.actuate), state)
                return SetActuator(
                    action.actuate, state, action.for_, rule.id, cause, action.while_, step
                )
            case WebhookAction():
                data = render_tree(action.data, context)
                return SendWebhook(action.webhook, action.event, data, rule.id, step)
            case NotifyAction():
                note = {
                    "title": render_text(action.title, context) if action.title else None,
                    "message": render_text(action.message, context),
                    "priority": action.priority,
                    "tags": list(action.tags),
                }
                return SendWebhook(action.notify, "notify", note, rule.id, step)
            case LogAction():
                level = logging.getLevelName(action.level.upper())
                return WriteLog(level, render_text(action.log, context), rule.id, step)
            case MqttPublishAction():
                topic = render_text(action.mqtt_publish, context)
                payload = render_tree(action.payload, context)
                text = (
                    as_text(payload)
                    if isinstance(payload, str | bool)
                    else json.dumps(payload, default=str)
                )
                return PublishMqtt(topic, text, action.qos, action.retain, rule.id, step)
            case SerialWriteAction():
                text = render_text(action.data, context)
                return WriteSerial(action.serial_write, text, rule.id, step)
            case DelayAction():
                return None  # the engine's own
            case _:
                assert_never(action)
    except TemplateError as exc:
        _LOG.error("rule %s: action skipped: %s", rule.id, exc)
        if step is not None:
            step.outcome, step.ok = f"skipped: {exc}", False
    return None


def action_label(action: Action) -> str:
    """An action as a trace shows it: ``actuate hallway_light on for 120s``."""
    match action:
        case ActuateAction():
            state = action.state
            shown = ("on" if state else "off") if isinstance(state, bool) else str(state)
            span = f" for {action.for_:g}s" if action.for_ is not None else ""
            hold = f" while {action.while_}" if action.while_ else ""
            return f"actuate {action.actuate} {shown}{span}{hold}"
        case WebhookAction():
            return f"webhook {action.webhook} ({action.event})"
        case NotifyAction():
            return f"notify {action.notify}"
        case LogAction():
            return f"log ({action.level})"
        case MqttPublishAction():
            return f"mqtt_publish {action.mqtt_publish}"
        case SerialWriteAction():
            return f"serial_write {action.serial_write}"
        case DelayAction():
            return f"delay {action.delay:g}s"
        case _:
            assert_never(action)
