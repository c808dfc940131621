"""What the HTTP API may see and do in the running gateway (its ``Control``).

A mixin of :class:`gateway.app.Gateway`: the views read the gateway's
state; the actions go through the same runtime as rules do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway import __version__
from gateway.api.middleware import NotFound, Refused
from gateway.config.models import GatewayConfig, GpioSensor, Sensor, VirtualSensor
from gateway.config.server import HookConfig
from gateway.config.types import parse_binary
from gateway.events import HookReceived, Value
from gateway.metrics import render as render_metrics
from gateway.outbox import queries

if TYPE_CHECKING:
    from gateway.app import Devices
    from gateway.inputs.links import Connections
    from gateway.outbox.delivery import Delivery
    from gateway.outbox.store import OutboxStore
    from gateway.rules.runtime import Runtime
    from gateway.rules.timers import TimerTable

_LOG = logging.getLogger(__name__)


class GatewayViews:
    """Status, sensors, actuators, the outbox and hooks, as the API shows them."""

    if TYPE_CHECKING:
        started: float
        simulate: bool
        store: OutboxStore
        delivery: Delivery
        timers: TimerTable
        connections: Connections
        devices: Devices | None
        runtime: Runtime | None
        _ready: bool

        @property
        def config(self) -> GatewayConfig: ...

    def ready(self) -> bool:
        return self._ready

    async def status(self) -> dict[str, Any]:
        outbox = await self.store.call(lambda db: queries.stats(db, time.time()))
        inputs: dict[str, dict[str, Any]] = {
            name: {"type": "gpio", "state": "connected"} for name in self._gpio_inputs()
        }
        inputs.update(self.connections.states())
        return {
            "name": self.config.gateway.name,
            "version": __version__,
            "uptime": round(time.time() - self.started, 3),
            "simulate": self.simulate,
            "inputs": inputs,
            "outbox": {
                "pending": outbox["pending"],
                "dead": outbox["dead"],
                "oldest_age": outbox["oldest_age"],
            },
            "timers": len(self.timers),
        }

    def _gpio_inputs(self) -> list[str]:
        return list(self.devices.inputs) if self.devices else []

    def sensors(self) -> dict[str, dict[str, Any]]:
        assert self.runtime is not None
        out = {}
        for name, sensor in self.config.sensors.items():
            value = self.runtime.sensors.get(name)
            view: dict[str, Any] = {"id": name, "kind": sensor.kind, "value": value}
            if isinstance(sensor, GpioSensor):
                view["gpio"] = sensor.gpio
            if sensor.binary and isinstance(value, bool):
                view["state"] = "on" if value else "off"
            out[name] = view
        return out

    def actuators(self) -> dict[str, dict[str, Any]]:
        return {name: self._actuator_view(name) for name in self.config.actuators}

    def _actuator_view(self, name: str) -> dict[str, Any]:
        assert self.devices is not None
        actuator = self.config.actuators[name]
        state = self.devices.outputs.get(name)
        revert = self.timers.get("revert", name)
        view: dict[str, Any] = {
            "id": name,
            "kind": actuator.kind,
            "gpio": getattr(actuator, "gpio", None),
            "state": "on" if state else "off",
            "on": bool(state),
            "until": _iso(revert.due) if revert else None,
        }
        if isinstance(state, float):
            view["level"] = state
        return view

    async def inject(self, sensor: str, value: bool | float | str, who: str) -> dict[str, Any]:
        assert self.runtime is not None
        assert self.devices is not None
        config = self.config.sensors.get(sensor)
        if config is None:
            raise NotFound(f"no sensor named {sensor!r}")
        reading = _coerce(sensor, config, value)
        mark = self.store.mark()
        if isinstance(config, GpioSensor):
            if not self.simulate:
                raise Refused(f"sensor {sensor!r} is a real GPIO input: it cannot be set")
            self.devices.inputs[sensor].simulate(bool(reading))
            await asyncio.sleep(0)  # the pin's edge reaches the rules via call_soon_threadsafe
        elif not isinstance(config, VirtualSensor) and not self.simulate:
            raise Refused(f"sensor {sensor!r} reads a device: it can be set only in simulation")
        else:
            self.runtime.reading(sensor, reading, who)
        await self.store.flushed(since=mark)  # the answer means: webhooks it caused are on disk
        _LOG.info("sensor %s set to %r by %s", sensor, reading, who)
        return {"id": sensor, "value": reading, "accepted": True}

    def actuate(
        self, actuator: str, state: bool | float | str, revert_after: float | None, who: str
    ) -> dict[str, Any]:
        assert self.runtime is not None
        if actuator not in self.config.actuators:
            raise NotFound(f"no actuator named {actuator!r}")
        self.runtime.actuate(actuator, state, revert_after, who)
        return self._actuator_view(actuator)

    async def outbox(self) -> dict[str, Any]:
        stats = await self.store.call(lambda db: queries.stats(db, time.time()))
        live = self.delivery.describe()
        stats["link"] = live["link"]
        for name, state in live["endpoints"].items():
            stats["endpoints"].setdefault(
                name, {"pending": 0, "dead": 0, "oldest_age": None}
            ).update(state)
        return stats

    def hook_config(self, name: str) -> HookConfig | None:
        return self.config.server.hooks.get(name)

    async def hook_seen(self, hook: str, msg_id: str) -> bool:
        return await self.store.call(partial(queries.hook_seen, hook=hook, msg_id=msg_id))

    async def hook_received(self, event: HookReceived) -> None:
        """Run the hook's rules, commit what they queued, remember the delivery id."""
        assert self.runtime is not None
        _LOG.info("hook %s: %s accepted from %s", event.hook, event.id, event.source)
        if not self.runtime.engine.watches_hook(event.hook):
            _LOG.warning("hook %s: no rule has `when: {hook: %s}`", event.hook, event.hook)
        mark = self.store.mark()
        self.runtime.handle(event)
        await self.store.flushed(since=mark)  # else OutboxError: 503, the sender retries
        now = time.time()
        await self.store.call(
            partial(queries.remember_hook, hook=event.hook, msg_id=event.id, now=now)
        )

    async def enable_endpoint(self, endpoint: str) -> bool:
        if endpoint not in self.config.webhooks:
            return False
        now = time.time()
        if await self.store.call(partial(queries.enable_endpoint, endpoint=endpoint, now=now)):
            _LOG.info("endpoint %s re-enabled", endpoint)
        self.delivery.wake([endpoint])
        return True

    async def metrics(self) -> str:
        stats = await self.store.call(lambda db: queries.stats(db, time.time()))
        for name in self.config.webhooks:  # a series with no rows is 0, never missing
            stats["endpoints"].setdefault(name, {"pending": 0, "dead": 0, "oldest_age": None})
        info = {
            "name": self.config.gateway.name,
            "version": __version__,
            "uptime": time.time() - self.started,
        }
        connections = {name: "connected" for name in self._gpio_inputs()}
        connections.update({k: v["state"] for k, v in self.connections.states().items()})
        return render_metrics(info, stats, self.delivery.metrics, connections)

    async def messages(
        self, state: str | None, endpoint: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return await self.store.call(
            partial(queries.list_messages, state=state, endpoint=endpoint, limit=limit)
        )

    async def message(self, msg_id: str) -> dict[str, Any] | None:
        return await self.store.call(partial(queries.show_message, msg_id=msg_id))

    async def retry_message(self, msg_id: str) -> bool:
        found = await self.store.call(lambda db: queries.retry(db, time.time(), msg_id=msg_id))
        self.delivery.wake_all()
        return found > 0


def _coerce(name: str, config: Sensor, value: bool | float | str) -> Value:
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
        raise web.HTTPUnprocessableEntity(text=f"value: {exc}") from None


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")
