"""Checks that need the whole config: names that rules and tokens refer to."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from gateway.config.actions import (
    ActuateAction,
    MqttPublishAction,
    SerialWriteAction,
    WebhookAction,
)
from gateway.config.connections import MqttSensor, SerialSensor
from gateway.config.filters import BINARY, NUMERIC
from gateway.config.models import (
    GatewayConfig,
    GpioActuator,
    GpioSensor,
    MqttActuator,
    SerialActuator,
)
from gateway.config.outbound import NotifyAction
from gateway.config.rules import (
    AnyCondition,
    Condition,
    HookTrigger,
    MqttTrigger,
    NotCondition,
    SensorCondition,
    SensorTrigger,
)
from gateway.events import UNAVAILABLE

Loc = tuple[int | str, ...]


def check_references(config: GatewayConfig) -> Iterator[tuple[Loc, str]]:
    """Yield ``(location, message)`` for every dangling or conflicting name."""
    yield from _check_pins(config)
    for name, sensor in config.sensors.items():
        if isinstance(sensor, SerialSensor):
            if sensor.serial not in config.serial:
                yield (
                    ("sensors", name, "serial"),
                    _unknown("serial port", sensor.serial, config.serial),
                )
            elif config.serial[sensor.serial].format == "raw" and sensor.field not in (
                None,
                "line",
            ):
                yield ("sensors", name, "field"), "a raw port has one field: line (or none)"
            elif config.serial[sensor.serial].format != "raw" and sensor.field is None:
                yield ("sensors", name), "missing required key 'field' (which value of a line)"
        if isinstance(sensor, MqttSensor) and config.mqtt is None:
            yield ("sensors", name, "mqtt"), "an MQTT sensor needs an mqtt: section (the broker)"
        if sensor.publish_state and config.mqtt is None:
            yield ("sensors", name, "publish_state"), "publishing needs an mqtt: section"
    if config.homeassistant is not None and config.mqtt is None:
        yield ("homeassistant",), "discovery needs an mqtt: section (the broker)"
    if config.alerts is not None and config.alerts.notify not in config.webhooks:
        yield ("alerts", "notify"), _unknown("webhook", config.alerts.notify, config.webhooks)
    for name, actuator in config.actuators.items():
        for key in ("publish_state", "commands"):
            if getattr(actuator, key) and config.mqtt is None:
                yield ("actuators", name, key), f"{key} needs an mqtt: section (the broker)"
    for name, sensor in config.sensors.items():
        for i, f in enumerate(sensor.filters):
            numeric = isinstance(f, NUMERIC)
            if sensor.binary and numeric:
                yield (
                    ("sensors", name, "filters", i),
                    f"{name} is an on/off sensor: this filter is for numbers",
                )
            elif not sensor.binary and isinstance(f, BINARY):
                yield (
                    ("sensors", name, "filters", i),
                    f"{next(iter(type(f).model_fields))} is for on/off sensors; {name} is not",
                )
    for name, actuator in config.actuators.items():
        if isinstance(actuator, SerialActuator) and actuator.serial not in config.serial:
            yield (
                ("actuators", name, "serial"),
                _unknown("serial port", actuator.serial, config.serial),
            )
        if isinstance(actuator, MqttActuator) and config.mqtt is None:
            yield ("actuators", name, "mqtt"), "an MQTT actuator needs an mqtt: section"
    seen_ids: dict[str, int] = {}
    for index, rule in enumerate(config.rules):
        where: Loc = ("rules", index)
        if rule.id in seen_ids:
            yield (
                (*where, "id"),
                f"rule id {rule.id!r} is used twice (also rule #{seen_ids[rule.id] + 1})",
            )
        seen_ids.setdefault(rule.id, index)
        for t, trigger in enumerate(rule.when):
            if isinstance(trigger, SensorTrigger):
                yield from _check_sensor_use(config, (*where, "when", t), trigger)
                watched = config.sensors.get(trigger.sensor)
                if trigger.gesture and watched is not None and not watched.binary:
                    yield (
                        (*where, "when", t, "gesture"),
                        f"a gesture needs an on/off sensor (a button); {trigger.sensor!r} is not",
                    )
            elif isinstance(trigger, MqttTrigger) and config.mqtt is None:
                yield (*where, "when", t, "mqtt"), "an mqtt trigger needs an mqtt: section"
            elif isinstance(trigger, HookTrigger) and trigger.hook not in config.server.hooks:
                yield (
                    (*where, "when", t, "hook"),
                    _unknown("hook", trigger.hook, config.server.hooks)
                    + " (declare it under server.hooks)",
                )
        for c, condition in enumerate(rule.if_):
            yield from _check_condition(config, (*where, "if", c), condition)
        for a, action in enumerate(rule.then):
            at: Loc = (*where, "then", a)
            if isinstance(action, ActuateAction):
                target = config.actuators.get(action.actuate)
                if target is None:
                    yield (*at, "actuate"), _unknown("actuator", action.actuate, config.actuators)
                if action.while_ is not None:
                    held_by = config.sensors.get(action.while_)
                    if held_by is None:
                        yield (*at, "while"), _unknown("sensor", action.while_, config.sensors)
                    elif not held_by.binary:
                        yield (
                            (*at, "while"),
                            f"while needs an on/off sensor; {action.while_!r} is not one",
                        )
                elif (
                    target is not None
                    and action.for_ is not None
                    and action.state is True
                    and target.max_on is not None
                    and action.for_ > target.max_on
                ):
                    yield (
                        (*at, "for"),
                        f"unreachable: {action.actuate!r} has max_on {target.max_on:g}s, "
                        f"so it is switched off before for ({action.for_:g}s) ends",
                    )
            if isinstance(action, SerialWriteAction) and action.serial_write not in config.serial:
                yield (
                    (*at, "serial_write"),
                    _unknown("serial port", action.serial_write, config.serial),
                )
            if isinstance(action, MqttPublishAction) and config.mqtt is None:
                yield (*at, "mqtt_publish"), "mqtt_publish needs an mqtt: section (the broker)"
            if isinstance(action, WebhookAction) and action.webhook not in config.webhooks:
                yield (*at, "webhook"), _unknown("webhook", action.webhook, config.webhooks)
            if isinstance(action, NotifyAction):
                endpoint = config.webhooks.get(action.notify)
                if endpoint is None:
                    yield (*at, "notify"), _unknown("webhook", action.notify, config.webhooks)
                elif endpoint.service is None:
                    yield (*at, "notify"), f"{action.notify} has no service: (ntfy, slack, ...)"
    for name, actuator in config.actuators.items():
        for i, peer in enumerate(actuator.interlock):
            if peer == name:
                yield (
                    ("actuators", name, "interlock", i),
                    f"{name} cannot be interlocked with itself",
                )
            elif peer not in config.actuators:
                yield (
                    ("actuators", name, "interlock", i),
                    _unknown("actuator", peer, config.actuators),
                )
    for name, token in config.server.tokens.items():
        for i, allowed in enumerate(token.actuators or ()):
            if allowed not in config.actuators:
                yield (
                    ("server", "tokens", name, "actuators", i),
                    _unknown("actuator", allowed, config.actuators),
                )
        for i, allowed in enumerate(token.sensors or ()):
            if allowed not in config.sensors:
                yield (
                    ("server", "tokens", name, "sensors", i),
                    _unknown("sensor", allowed, config.sensors),
                )
    tls = config.server.tls
    if tls is not None:
        for key in ("cert", "key"):
            if not os.path.isfile(getattr(tls, key)):
                yield ("server", "tls", key), f"no such file: {getattr(tls, key)}"
    if not config.server.loopback_only and not config.server.tokens:
        yield (
            ("server", "listen"),
            f"listening on {config.server.host} (not loopback) needs server.tokens: "
            "the API would be open to the network",
        )


def _check_condition(
    config: GatewayConfig, at: Loc, condition: Condition
) -> Iterator[tuple[Loc, str]]:
    if isinstance(condition, SensorCondition):
        yield from _check_sensor_use(config, at, condition)
        split = config.sensors.get(condition.sensor)
        if isinstance(split, MqttSensor) and split.splits:
            yield (
                (*at, "sensor"),
                (
                    f"{condition.sensor} is split into one sensor per topic: a condition reads "
                    "one of them by its name (in a template: sensors['NAME'])"
                ),
            )
    elif isinstance(condition, AnyCondition):
        for i, inner in enumerate(condition.any):
            yield from _check_condition(config, (*at, "any", i), inner)
    elif isinstance(condition, NotCondition):
        if isinstance(condition.not_, list):
            for i, inner in enumerate(condition.not_):
                yield from _check_condition(config, (*at, "not", i), inner)
        else:
            yield from _check_condition(config, (*at, "not"), condition.not_)


def _check_sensor_use(
    config: GatewayConfig, at: Loc, use: SensorTrigger | SensorCondition
) -> Iterator[tuple[Loc, str]]:
    sensor = config.sensors.get(use.sensor)
    if sensor is None:
        yield (*at, "sensor"), _unknown("sensor", use.sensor, config.sensors)
        return
    numeric_test = use.above is not None or use.below is not None
    if numeric_test and sensor.binary:
        key = "above" if use.above is not None else "below"
        yield (*at, key), f"sensor {use.sensor!r} is on/off: use to/is with on or off"
    target = use.to if isinstance(use, SensorTrigger) else use.is_
    if target is not None and target != UNAVAILABLE:  # any sensor may become unavailable
        key = "to" if isinstance(use, SensorTrigger) else "is"
        if sensor.binary and not isinstance(target, bool):
            yield (*at, key), f"sensor {use.sensor!r} is on/off: compare it with on or off"
        elif not sensor.binary and isinstance(target, bool):
            yield (*at, key), f"sensor {use.sensor!r} is not on/off: compare it with a value"
    numeric_change = isinstance(use, SensorTrigger) and not isinstance(use.changes, bool | None)
    if numeric_change and sensor.binary:
        yield (*at, "changes"), f"sensor {use.sensor!r} is on/off: changes takes true, not a number"


def _check_pins(config: GatewayConfig) -> Iterator[tuple[Loc, str]]:
    used: dict[int, str] = {}
    devices: list[tuple[str, str, int]] = [
        ("sensors", name, s.gpio) for name, s in config.sensors.items() if isinstance(s, GpioSensor)
    ]
    devices += [
        ("actuators", name, a.gpio)
        for name, a in config.actuators.items()
        if isinstance(a, GpioActuator)
    ]
    for section, name, pin in devices:
        if pin in used:
            yield (section, name, "gpio"), f"GPIO {pin} is already used by {used[pin]}"
        else:
            used[pin] = f"{section[:-1]} {name!r}"
    for name, sensor in config.sensors.items():
        if isinstance(sensor, GpioSensor) and sensor.gpio in (2, 3) and not sensor.pulled_up:
            yield (
                ("sensors", name, "gpio"),
                f"GPIO {sensor.gpio} has a fixed 1.8 kΩ pull-up on every Pi (it is I2C): "
                "wire the input to ground and use pull_up: true, or choose another pin",
            )
    names = set(config.sensors) & set(config.actuators)
    for name in sorted(names):
        yield ("actuators", name), f"{name!r} names both a sensor and an actuator"


def _unknown(what: str, name: str, known: Mapping[str, object]) -> str:
    import difflib

    message = f"unknown {what} {name!r}"
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"{message} (did you mean {close[0]!r}?)"
    if known:
        return f"{message}; known: {', '.join(sorted(known))}"
    return f"{message}: none is declared"
