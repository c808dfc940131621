"""Builds the gateway from a config and runs it: start, reload, stop.

This module wires; it does not decide. Rules decide (``rules/``), drivers
talk to hardware (``inputs/``, ``outputs/``), the outbox delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import ssl
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from gateway.api.access import AccessPolicy
from gateway.api.auth import TokenTable
from gateway.api.middleware import http_logger
from gateway.api.server import make_app
from gateway.config import ConfigError, LoadedConfig, load_config
from gateway.config.models import GatewayConfig, GpioSensor
from gateway.errors import GatewayError, HardwareError
from gateway.events import MqttReceived, Value
from gateway.inputs.gpio import GpioInput
from gateway.inputs.links import Connections
from gateway.localtime import local_zone
from gateway.outbox import queries
from gateway.outbox.database import outbox_size
from gateway.outbox.delivery import Delivery
from gateway.outbox.store import OutboxStore
from gateway.outputs.bank import Actuators
from gateway.pins import make_pin_factory
from gateway.rules.runtime import Runtime
from gateway.rules.timers import TimerTable
from gateway.systemd import Notifier, watchdog_interval
from gateway.views import GatewayViews

_LOG = logging.getLogger(__name__)

ATTEMPT_LOG_DAYS = 7
STATUS_INTERVAL = 10.0
STOP_FLUSH = 2.0  # seconds the last MQTT publishes and serial writes may take at a stop


class _Shutdown(Exception):
    """Raised inside the task group to end it (cancelling every task)."""


@dataclass
class Devices:
    """The pin factory and the devices built from one config."""

    factory: Any
    outputs: Actuators
    inputs: dict[str, GpioInput] = field(default_factory=dict)

    def close(self) -> None:
        for sensor in self.inputs.values():
            sensor.close()
        self.outputs.close()


class Gateway(GatewayViews):
    """The running daemon: one config, its devices, rules, outbox and API."""

    def __init__(self, loaded: LoadedConfig, simulate: bool = False) -> None:
        self.loaded = loaded
        self.simulate = simulate or loaded.config.gateway.simulate
        self.started = time.time()
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        self._timer_wake = asyncio.Event()
        self._ready = False
        self._stopping = False  # inputs are no longer acted on
        self._outbox_rows: int | None = None
        self._group: asyncio.TaskGroup | None = None
        self._connections_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        state_dir = loaded.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.timers = TimerTable(state_dir / "timers.json")
        self.store = OutboxStore(
            state_dir / "outbox.db",
            max_rows=loaded.config.outbox.max_rows,
            max_bytes=loaded.config.outbox.max_bytes,
            when_full=loaded.config.outbox.when_full,
        )
        self.delivery = Delivery(self.store, loaded.config.webhooks)
        self.connections = Connections(loaded.config, self._on_reading, self._on_mqtt, self.store)
        self.tokens = TokenTable(loaded.config.server.tokens)
        self.access = AccessPolicy.from_config(loaded.config.server)
        self.devices: Devices | None = None
        self.runtime: Runtime | None = None

    @property
    def config(self) -> GatewayConfig:
        return self.loaded.config

    # ------------------------------------------------------------------ building

    def _build(self, config: GatewayConfig, states: dict[str, bool | float] | None = None) -> None:
        """Devices and runtime for ``config`` (the old ones must be closed already)."""
        assert self._loop is not None
        factory = make_pin_factory(config.gpio.pin_factory, self.simulate)
        self.connections = Connections(config, self._on_reading, self._on_mqtt, self.store)
        outputs = Actuators(dict(config.actuators), factory, self.connections, states)
        devices = Devices(factory, outputs)
        runtime = Runtime(
            config, outputs, self.store, self.timers, time.time, local_zone(config.gateway.timezone)
        )
        runtime.links = self.connections
        runtime.on_timers_changed = self._timer_wake.set
        try:
            for name, sensor in config.sensors.items():
                if isinstance(sensor, GpioSensor):
                    device = GpioInput(name, sensor, factory, self._loop, self._on_gpio)
                    devices.inputs[name] = device
                    runtime.sensors[name] = device.value
        except HardwareError:
            devices.close()
            raise
        self.devices, self.runtime = devices, runtime

    def _states_from_timers(self) -> dict[str, bool | float]:
        """Actuators that were switched for a while when the gateway stopped or crashed.

        A saved switch-back means the actuator was in another state until
        then (a pwm output at a level): it is so again until that deadline
        (one already passed switches it back at once).
        """
        states: dict[str, bool | float] = {}
        now = time.time()
        for timer in self.timers:
            if timer.kind == "revert" and timer.key in self.config.actuators and timer.due > now:
                was = timer.data.get("was", not timer.data.get("state", False))
                states[timer.key] = was if isinstance(was, (bool, float)) else bool(was)
                shown = "on" if was is True else "off" if was is False else f"at level {was:g}"
                until = dt.datetime.fromtimestamp(timer.due).strftime("%H:%M:%S")
                _LOG.info(
                    "%s restored %s until %s (a timer saved before the restart)",
                    timer.key,
                    shown,
                    until,
                )
        return states

    def _on_reading(self, sensor: str, value: Value, source: str) -> None:
        if self.runtime is not None and not self._stopping:
            self.runtime.reading(sensor, value, source)

    def _on_mqtt(self, event: MqttReceived) -> None:
        if self.runtime is not None and not self._stopping:
            self.runtime.handle(event)

    def _on_gpio(self, sensor: str, value: bool) -> None:
        if self.runtime is not None and not self._stopping:
            self.runtime.reading(sensor, value, "gpio")

    # ------------------------------------------------------------------ lifecycle

    async def run(self, handle_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or :meth:`stop`); returns the exit code."""
        self._loop = asyncio.get_running_loop()
        self.store.start()
        self.store.on_commit = self._committed
        try:
            self._build(self.config, self._states_from_timers())
        except GatewayError:
            self.store.stop()
            raise
        runner = await self._start_server()
        signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if handle_signals else ()
        for signum in signals[:2]:
            self._loop.add_signal_handler(signum, self._stop.set)
        if signals:
            self._loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            await self._serve()
        finally:
            self.notifier.stopping()
            _LOG.info("stopping")
            for signum in signals:
                self._loop.remove_signal_handler(signum)
            await runner.cleanup()
            if self.devices is not None:
                self.devices.outputs.safe_state()
                self.devices.close()
            self.store.stop()
            self.notifier.close()
            _LOG.info("stopped")
        return 0

    async def _serve(self) -> None:
        assert self.runtime is not None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.delivery.run(), name="delivery")
                timers = group.create_task(self._run_timers(), name="timers")
                group.create_task(self._housekeeping(), name="housekeeping")
                self._group = group
                self._start_connections()
                interval = watchdog_interval()
                if interval:
                    group.create_task(self._watchdog(interval), name="watchdog")
                self._ready = True
                if self.devices is not None:
                    self.devices.outputs.announce()
                self.runtime.start()
                self.notifier.ready(self._status_line())
                _LOG.info(
                    "ready: %s; API on http://%s", self._status_line(), self.config.server.listen
                )
                await self._stop.wait()
                await self._leave_safe(timers)
                raise _Shutdown
        except* _Shutdown:
            pass

    async def _leave_safe(self, timers: asyncio.Task[None]) -> None:
        """The stop order is the safety order: no rule or timer switches anything
        from now on, then every actuator goes to its safe state while the MQTT and
        serial links are still up to carry it, then (the caller) the links go."""
        self._stopping = True
        timers.cancel()
        if self.devices is not None:
            self.devices.outputs.safe_state()
        try:
            async with asyncio.timeout(STOP_FLUSH):
                await self.connections.flush()
        except TimeoutError:
            _LOG.warning(
                "the last MQTT publishes or serial writes did not leave in %gs", STOP_FLUSH
            )

    async def _start_server(self) -> web.AppRunner:
        server = self.config.server
        runner = web.AppRunner(
            make_app(self, self.tokens, self.access), access_log=None, logger=http_logger()
        )
        await runner.setup()
        ssl_context = None
        if server.tls is not None:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ssl_context.load_cert_chain(server.tls.cert, server.tls.key)
            except (OSError, ssl.SSLError) as exc:
                await runner.cleanup()
                raise GatewayError(f"cannot load the TLS certificate or key: {exc}") from exc
        site = web.TCPSite(runner, server.host, server.port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            self.store.stop()
            if self.devices is not None:
                self.devices.close()
            raise GatewayError(f"cannot listen on {server.listen}: {exc.strerror}") from exc
        return runner

    def _committed(self, endpoints: set[str]) -> None:
        """Called on the outbox thread after new rows are committed."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: we are stopping
                self._loop.call_soon_threadsafe(self.delivery.wake, endpoints)

    def stop(self) -> None:
        self._stop.set()

    def _start_connections(self) -> None:
        if self._connections_task is not None:
            self._connections_task.cancel()
        if self._group is not None:
            self._connections_task = self._group.create_task(
                self.connections.run(), name="connections"
            )

    def reload(self) -> None:
        """SIGHUP: load the config again; keep the old one if the new one is bad."""
        self.notifier.reloading()
        _LOG.info("reloading %s", self.loaded.path)
        try:
            new = load_config(self.loaded.path)
        except ConfigError as exc:
            for problem in exc.problems:
                _LOG.error("%s", problem)
            _LOG.error("the new config is invalid: still running the old one")
            self.notifier.ready(self._status_line())
            return
        self._swap(new)
        self.notifier.ready(self._status_line())

    def _swap(self, new: LoadedConfig) -> None:
        old, old_states = self.loaded, self.devices.outputs.states() if self.devices else {}
        if new.config.server.listen != old.config.server.listen:
            _LOG.warning("server.listen changed: it takes effect after a restart")
        if self.devices is not None:
            self.devices.close()
        old_runtime = self.runtime
        try:
            self._build(new.config, old_states)
        except GatewayError as exc:
            _LOG.error("cannot apply the new config (%s): still running the old one", exc)
            self._build(old.config, old_states)
            new = old
        if old_runtime is not None and self.runtime is not None:
            for name, value in old_runtime.sensors.items():
                self.runtime.sensors.setdefault(name, value)
        if self.runtime is not None:
            self.runtime.start(startup=False)
        self._start_connections()
        self.loaded = new
        self.delivery.update(new.config.webhooks)
        self.tokens.replace(new.config.server.tokens)
        self.access.update(new.config.server)
        self._timer_wake.set()
        _LOG.info("reloaded: %s", self._status_line())

    # ------------------------------------------------------------------ background tasks

    async def _run_timers(self) -> None:
        while True:
            self._timer_wake.clear()
            if self.runtime is not None:
                self.runtime.run_due()
                due = self.runtime.next_due()
            else:
                due = None
            delay = 60.0 if due is None else min(max(due - time.time(), 0.0), 60.0)
            try:
                async with asyncio.timeout(delay):
                    await self._timer_wake.wait()
            except TimeoutError:
                pass

    async def _housekeeping(self) -> None:
        """Every 10 s the STATUS= line (with the outbox depth); hourly, prune attempt logs."""
        last_prune = 0.0
        while True:
            try:
                if time.monotonic() - last_prune > 3600:
                    cutoff = time.time() - ATTEMPT_LOG_DAYS * 86400
                    await self.store.call(partial(queries.prune_attempts, before=cutoff))
                    last_prune = time.monotonic()
                rows, _ = await self.store.call(outbox_size)
                self._outbox_rows = rows
                self.notifier.status(self._status_line())
            except Exception as exc:
                _LOG.error("outbox housekeeping failed: %s", exc)
            await asyncio.sleep(STATUS_INTERVAL)

    async def _watchdog(self, interval: float) -> None:
        while True:  # runs on the event loop: a stuck loop stops the pings
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _status_line(self) -> str:
        c = self.config
        line = f"{len(c.sensors)} sensors, {len(c.actuators)} actuators, {len(c.rules)} rules"
        if self._outbox_rows is not None:
            line += f", outbox {self._outbox_rows} pending"
        return line + (" (simulated GPIO)" if self.simulate else "")


async def run_daemon(path: str, simulate: bool) -> int:
    """Load the config and run the gateway until it is told to stop."""
    loaded = load_config(path)
    gateway = Gateway(loaded, simulate=simulate)
    return await gateway.run()
