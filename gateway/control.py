"""What the outside may see and do in the running gateway: one facade.

The HTTP API talks to :class:`Control` (and next, the dashboard and MQTT
commands will): it reads the parts the gateway is made of and acts through
the same runtime rules use, so a switch from the API gets the same audit
line, ``max_on`` and timers as one from a rule. It answers with the view
models of :mod:`gateway.api.models` and raises the errors of
:mod:`gateway.errors` (the API maps them to HTTP); it knows no HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from gateway import __version__
from gateway.api.models import ActuatorView, SensorAccepted, SensorView, StatusView
from gateway.api.stream import EventStream
from gateway.config.models import GatewayConfig, GpioSensor, Sensor, VirtualSensor
from gateway.config.server import HookConfig
from gateway.config.types import parse_binary
from gateway.devices import Devices
from gateway.errors import InvalidValue, NotFound, Refused
from gateway.events import UNAVAILABLE, HookReceived, Value
from gateway.history.recorder import Recorder
from gateway.hub.hub import Hub
from gateway.inputs.connections import Connections
from gateway.localtime import iso_utc
from gateway.metrics import Counts, Reading
from gateway.metrics import render as render_metrics
from gateway.outbox.service import Outbox
from gateway.rulecontrol import RuleControl
from gateway.rules.overrides import RuleOverrides
from gateway.rules.runtime import Runtime
from gateway.rules.timerkinds import ACTUATOR_KINDS, Switch
from gateway.rules.timers import TimerTable

_LOG = logging.getLogger(__name__)


@dataclass
class Live:
    """What one config builds; a reload replaces it (or parts of it)."""

    config: GatewayConfig
    runtime: Runtime
    devices: Devices
    connections: Connections
    hub: Hub  # state topics, commands and discovery on the MQTT link


class Control:
    """Status, sensors, actuators, hooks and the outbox, as the outside sees them."""

    def __init__(
        self,
        live: Live,
        outbox: Outbox,
        timers: TimerTable,
        simulate: bool = False,
        started: float | None = None,
        recorder: Recorder | None = None,
        overrides: RuleOverrides | None = None,
        events: EventStream | None = None,
    ) -> None:
        self.live = live
        self.outbox = outbox
        self.timers = timers
        rules = [rule.id for rule in live.config.rules]
        self.recorder = recorder or Recorder(None, live.config.history, rules)
        self.events = events or EventStream()
        self.rules = RuleControl(
            lambda: self.live, outbox, self.recorder, overrides or RuleOverrides(None)
        )
        self.simulate = simulate
        self.started = time.time() if started is None else started
        self.ready = False  # serving: started and not stopping
        self.hooks: Counter[tuple[str, str]] = Counter()  # (hook, accepted|rejected|invalid)

    @property
    def config(self) -> GatewayConfig:
        return self.live.config

    # ------------------------------------------------------------------ reading

    async def status(self) -> StatusView:
        outbox = await self.outbox.stats()
        return StatusView.model_validate(
            {
                "name": self.config.gateway.name,
                "version": __version__,
                "uptime": round(time.time() - self.started, 3),
                "simulate": self.simulate,
                "inputs": self.inputs(),
                "outbox": {k: outbox[k] for k in ("pending", "dead", "oldest_age")},
                "timers": len(self.timers),
            }
        )

    def inputs(self) -> dict[str, dict[str, Any]]:
        """Every input and its connection state (GPIO pins are always there)."""
        inputs: dict[str, dict[str, Any]] = {
            name: {"type": "gpio", "state": "connected"} for name in self.live.devices.inputs
        }
        inputs.update(self.live.connections.states())
        return inputs

    def sensors(self) -> dict[str, SensorView]:
        """Every sensor, then the members of split MQTT sensors seen so far."""
        return {name: self.sensor(name) for name in self.live.runtime.sensors_known()}

    def sensor(self, name: str) -> SensorView:
        runtime = self.live.runtime
        group = runtime.members.get(name)
        sensor = self.config.sensors.get(group or name)
        if sensor is None:
            raise NotFound(f"no sensor named {name!r}")
        value = runtime.sensors.get(name)
        view: dict[str, Any] = {"id": name, "kind": sensor.kind, "value": value}
        if group is not None:
            view["group"] = group
        if isinstance(sensor, GpioSensor):
            view["gpio"] = sensor.gpio
        if name in runtime.unavailable:
            view.update(value=None, state=UNAVAILABLE, available=False)
        elif sensor.binary and isinstance(value, bool):
            view["state"] = "on" if value else "off"
        for key, times in (("last_updated", runtime.updated), ("last_changed", runtime.changed)):
            view[key] = iso_utc(times[name]) if name in times else None
        return SensorView.model_validate(view)

    def actuators(self) -> dict[str, ActuatorView]:
        return {name: self.actuator(name) for name in self.config.actuators}

    def actuator(self, name: str) -> ActuatorView:
        actuator = self.config.actuators.get(name)
        if actuator is None:
            raise NotFound(f"no actuator named {name!r}")
        state = self.live.devices.outputs.get(name)
        pending = [t.due for k in ACTUATOR_KINDS if (t := self.timers.get(k, name))]
        view: dict[str, Any] = {
            "id": name,
            "kind": actuator.kind,
            "gpio": getattr(actuator, "gpio", None),
            "state": "on" if state else "off",
            "on": bool(state),
            "until": iso_utc(min(pending)) if pending else None,  # the next switch, whichever
        }
        if isinstance(state, float):
            view["level"] = state
        waiting = self.live.runtime.switching.deferred(name)
        view["deferred"] = None
        if waiting is not None and isinstance(waiting.payload, Switch):
            shown = "on" if waiting.payload.state else "off"
            view["deferred"] = {"state": shown, "at": iso_utc(waiting.due)}
        return ActuatorView.model_validate(view)

    async def metrics(self) -> str:
        stats = await self.outbox.stats(self.config.webhooks)
        info = {
            "name": self.config.gateway.name,
            "version": __version__,
            "uptime": time.time() - self.started,
        }
        runtime = self.live.runtime
        counts = Counts(
            rules={r.id: self.live.runtime.engine.fired[r.id] for r in self.config.rules},
            suppressed={
                (r.id, reason): runtime.engine.suppressed[(r.id, reason)]
                for r in self.config.rules
                for reason in ("condition", "cooldown", "running")
            },
            hooks={
                (name, outcome): self.hooks[(name, outcome)]
                for name in self.config.server.hooks
                for outcome in ("accepted", "rejected", "invalid")
            },
            inputs=self.inputs(),
            sensors={
                name: Reading(
                    runtime.sensors.get(name),
                    name not in runtime.unavailable,
                    runtime.updated.get(name),
                )
                for name in runtime.sensors_known()
            },
            actuators={name: self.live.devices.outputs.get(name) for name in self.config.actuators},
            looking={
                "outbox_commits": self.outbox.store.commits,
                "outbox_fsyncs": self.outbox.store.fsyncs,
                "history_commits": self.recorder.commits,
                "history_rows_written": self.recorder.rows_written,
                "history_errors": self.recorder.errors,
                "event_stream_clients": len(self.events.clients),
                "event_stream_events": self.events.sent,
                "event_stream_dropped": self.events.dropped,
            },
        )
        return render_metrics(info, stats, self.outbox.metrics, counts)

    async def outbox_view(self) -> dict[str, Any]:
        return await self.outbox.stats(self.config.webhooks, live=True)

    # ------------------------------------------------------------------ acting

    async def set_sensor(self, name: str, value: bool | float | str, who: str) -> SensorAccepted:
        """Set a virtual sensor (any sensor in simulation); returns once the webhooks
        it caused are committed (:class:`OutboxError` if they could not be)."""
        config = self.config.sensors.get(name)
        if config is None:
            raise NotFound(f"no sensor named {name!r}")
        reading = _coerce(config, value)
        mark = self.outbox.mark()
        if isinstance(config, GpioSensor):
            if not self.simulate:
                raise Refused(f"sensor {name!r} is a real GPIO input: it cannot be set")
            self.live.devices.inputs[name].simulate(bool(reading))
            await asyncio.sleep(0)  # the pin's edge reaches the rules via call_soon_threadsafe
        elif not isinstance(config, VirtualSensor) and not self.simulate:
            raise Refused(f"sensor {name!r} reads a device: it can be set only in simulation")
        else:
            self.live.runtime.reading(name, reading, who)
        await self.outbox.flushed(since=mark)
        _LOG.info("sensor %s set to %r by %s", name, reading, who)
        return SensorAccepted.model_validate({"id": name, "value": reading, "accepted": True})

    def switch(
        self, name: str, state: bool | float | str, revert_after: float | None, who: str
    ) -> ActuatorView:
        """Switch an actuator as a rule would (same ``max_on``, timers and audit line)."""
        actuator = self.config.actuators.get(name)
        if actuator is None:
            raise NotFound(f"no actuator named {name!r}")
        runtime = self.live.runtime
        target = runtime.switching.target(name, state)
        if (why := runtime.switching.refusal(name, target)) is not None:
            raise Refused(f"{name} {why}")
        limit = actuator.max_on
        too_long = revert_after is not None and limit is not None and revert_after > limit
        if too_long and target:
            raise InvalidValue(
                f"for: {revert_after:g}s is longer than max_on ({limit:g}s) of {name}"
            )
        runtime.actuate(name, state, revert_after, who)
        return self.actuator(name)

    # ------------------------------------------------------------------ inbound hooks

    def hook(self, name: str) -> HookConfig:
        config = self.config.server.hooks.get(name)
        if config is None:
            raise NotFound(f"no hook named {name!r}")
        return config

    async def hook_seen(self, hook: str, msg_id: str) -> bool:
        """Whether this delivery was acted on within the replay window."""
        return await self.outbox.hook_seen(hook, msg_id, self.config.server.replay_window)

    async def accept_hook(self, event: HookReceived) -> None:
        """Run the hook's rules; commit what they queued and the delivery id together."""
        runtime = self.live.runtime
        _LOG.info("hook %s: %s accepted from %s", event.hook, event.id, event.source)
        if not runtime.engine.watches_hook(event.hook):
            _LOG.warning("hook %s: no rule has `when: {hook: %s}`", event.hook, event.hook)
        mark = self.outbox.mark()
        runtime.handle(event)
        self.outbox.remember_hook(event.hook, event.id)
        await self.outbox.flushed(since=mark)  # else OutboxError: 503, the sender retries
        self.hooks[(event.hook, "accepted")] += 1

    async def enable_endpoint(self, endpoint: str) -> None:
        if endpoint not in self.config.webhooks:
            raise NotFound(f"no webhook endpoint {endpoint!r}")
        await self.outbox.enable_endpoint(endpoint)


def _coerce(config: Sensor, value: bool | float | str) -> Value:
    try:
        if config.binary:
            return parse_binary(value)
        numeric = config.type if isinstance(config, VirtualSensor) else config.kind
        if numeric == "number":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("expected a finite number")
            return number
        return str(value)
    except (ValueError, OverflowError) as exc:
        raise InvalidValue(f"value: {exc}") from None
