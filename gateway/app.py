"""Builds the gateway from a config and runs it: start, reload, stop.

This module wires; it does not decide. Rules decide (``rules/``), drivers
talk to hardware (``inputs/``, ``outputs/``), the outbox delivers, and the
outside sees and acts through :class:`gateway.control.Control`. Every part
is built once and started in an :class:`~contextlib.AsyncExitStack`, so each
start has its stop, in reverse order, whatever fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time

from aiohttp import web

from gateway.alerts import AlertMonitor
from gateway.api.access import AccessPolicy
from gateway.api.auth import TokenTable
from gateway.api.middleware import http_logger
from gateway.api.server import make_app
from gateway.api.session import Sessions
from gateway.api.stream import EventStream
from gateway.config import ConfigError, LoadedConfig, load_config
from gateway.config.models import GatewayConfig
from gateway.control import Control, Live
from gateway.errors import GatewayError
from gateway.events import MqttReceived, Value
from gateway.history.recorder import Recorder
from gateway.inputs.connections import Connections
from gateway.live import build_live, link_settings
from gateway.outbox.service import Outbox
from gateway.rules.overrides import RuleOverrides
from gateway.rules.timers import TimerTable
from gateway.systemd import Notifier, watchdog_interval

_LOG = logging.getLogger(__name__)

STATUS_INTERVAL = 10.0
STOP_FLUSH = 2.0  # seconds the last MQTT publishes and serial writes may take at a stop


class _Shutdown(Exception):
    """Raised inside the task group to end it (cancelling every task)."""


class Gateway:
    """The running daemon: one config, its devices, rules, outbox and API."""

    def __init__(self, loaded: LoadedConfig, simulate: bool = False) -> None:
        self.loaded = loaded
        self.simulate = simulate or loaded.config.gateway.simulate
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        self._timer_wake = asyncio.Event()
        self._stopping = False  # inputs are no longer acted on
        self._outbox_rows: int | None = None
        self._group: asyncio.TaskGroup | None = None
        self._connections_task: asyncio.Task[None] | None = None
        state_dir = loaded.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        config = loaded.config
        self.timers = TimerTable(state_dir / "timers.json")
        rules = [rule.id for rule in config.rules]
        self.recorder = Recorder(state_dir / "history.db", config.history, rules)
        self.overrides = RuleOverrides(state_dir / "rules.json")
        self.events = EventStream(config.gateway.name)
        self.outbox = Outbox(state_dir / "outbox.db", config.outbox, config.webhooks)
        self.outbox.metrics.listeners.append(self.events.webhook)
        self.tokens = TokenTable(config.server.tokens)
        self.access = AccessPolicy.from_config(config.server)
        self.control: Control | None = None  # once started

    @property
    def config(self) -> GatewayConfig:
        return self.loaded.config

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ building

    def _connect(self, config: GatewayConfig) -> Connections:
        return Connections(
            config,
            self._on_reading,
            self._on_mqtt,
            self.outbox.store,
            self._on_lost,
            self._on_member,
        )

    def _build(
        self, config: GatewayConfig, connections: Connections, states: dict[str, bool | float]
    ) -> Live:
        live = build_live(
            config,
            connections,
            simulate=self.simulate,
            outbox=self.outbox,
            timers=self.timers,
            on_gpio=self._on_gpio,
            wake=self._timer_wake.set,
            states=states,
            observers=[self.recorder, self.events],
        )
        live.runtime.engine.disabled = self.overrides.disabled(config.rules)
        return live

    def _on_reading(self, sensor: str, value: Value, source: str) -> None:
        if self.control is not None and not self._stopping:
            self.control.live.runtime.reading(sensor, value, source)

    def _on_member(self, member: str, group: str, value: Value) -> None:
        if self.control is not None and not self._stopping:
            self.control.live.runtime.reading(member, value, "mqtt", group)

    def _on_lost(self, sensors: list[str], why: str) -> None:
        if self.control is not None and not self._stopping:
            self.control.live.runtime.lost(sensors, why)

    def _on_mqtt(self, event: MqttReceived) -> None:
        if self.control is not None and not self._stopping:
            self.control.live.runtime.handle(event)

    def _on_gpio(self, sensor: str, value: bool) -> None:
        if self.control is not None and not self._stopping:
            self.control.live.runtime.reading(sensor, value, "gpio")

    # ------------------------------------------------------------------ lifecycle

    async def run(self, handle_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or :meth:`stop`); returns the exit code."""
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self._stopped)
            stack.enter_context(self.outbox)  # closed last: everything above may still write
            states = self.timers.held(self.config.actuators, time.time())
            live = self._build(self.config, self._connect(self.config), states)
            self.control = Control(
                live,
                self.outbox,
                self.timers,
                self.simulate,
                recorder=self.recorder,
                overrides=self.overrides,
                events=self.events,
            )
            stack.callback(self.recorder.close)
            self.events.bind(asyncio.get_running_loop())
            gateway_log = logging.getLogger("gateway")
            gateway_log.addHandler(self.events.handler)
            stack.callback(gateway_log.removeHandler, self.events.handler)
            stack.callback(self._close_devices)
            stack.push_async_callback((await self._start_server()).cleanup)
            stack.callback(self.events.close)  # before the cleanup, which waits for them
            if handle_signals:
                self._handle_signals(stack)
            await self._serve(live)
        return 0

    def _handle_signals(self, stack: contextlib.AsyncExitStack) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
            stack.callback(loop.remove_signal_handler, signum)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        stack.callback(loop.remove_signal_handler, signal.SIGHUP)

    async def _start_server(self) -> web.AppRunner:
        assert self.control is not None
        server = self.config.server
        ssl_context = None
        if server.tls is not None:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ssl_context.load_cert_chain(server.tls.cert, server.tls.key)
            except (OSError, ssl.SSLError) as exc:
                raise GatewayError(f"cannot load the TLS certificate or key: {exc}") from exc
        sessions = Sessions(self.tokens, self.loaded.state_dir / "session.key")
        app = make_app(self.control, self.tokens, self.access, sessions)
        runner = web.AppRunner(app, access_log=None, logger=http_logger())
        await runner.setup()
        site = web.TCPSite(runner, server.host, server.port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise GatewayError(f"cannot listen on {server.listen}: {exc.strerror}") from exc
        return runner

    async def _serve(self, live: Live) -> None:
        assert self.control is not None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.outbox.run(), name="delivery")
                timers = group.create_task(self._run_timers(), name="timers")
                group.create_task(self._housekeeping(), name="housekeeping")
                group.create_task(AlertMonitor(self.control).run(), name="alerts")
                group.create_task(self.recorder.run(), name="history")
                inputs = self.control.inputs
                group.create_task(self.events.watch_inputs(inputs), name="input states")
                self._group = group
                self._start_connections(live.connections)
                interval = watchdog_interval()
                if interval:
                    group.create_task(self._watchdog(interval), name="watchdog")
                self.control.ready = True
                live.devices.outputs.announce()
                live.runtime.start()
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
        serial links are still up to carry it, then (the task group) the links go."""
        assert self.control is not None
        self.notifier.stopping()
        _LOG.info("stopping")
        self.control.ready = False
        self._stopping = True
        timers.cancel()
        live = self.control.live
        live.devices.outputs.safe_state()
        try:
            async with asyncio.timeout(STOP_FLUSH):
                await live.connections.flush()
        except TimeoutError:
            _LOG.warning(
                "the last MQTT publishes or serial writes did not leave in %gs", STOP_FLUSH
            )

    def _close_devices(self) -> None:
        if self.control is not None:
            devices = self.control.live.devices
            devices.outputs.safe_state()  # already done at a clean stop; not after a failure
            devices.close()

    def _stopped(self) -> None:
        self.notifier.close()
        _LOG.info("stopped")

    def _start_connections(self, connections: Connections) -> None:
        if self._connections_task is not None:
            self._connections_task.cancel()
        if self._group is not None:
            self._connections_task = self._group.create_task(connections.run(), name="connections")

    # ------------------------------------------------------------------ reload

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
        """Apply a new config, keeping what did not change: sensor values, the timers
        of unchanged rules, and the MQTT and serial connections if their settings
        are the same (no offline/online flap on the status topic)."""
        assert self.control is not None
        old = self.control.live
        if new.config.server.listen != old.config.server.listen:
            _LOG.warning("server.listen changed: it takes effect after a restart")
        states = old.devices.outputs.states()
        same_links = link_settings(old.config) == link_settings(new.config)
        connections = old.connections if same_links else self._connect(new.config)
        old.devices.close()
        try:
            live = self._build(new.config, connections, states)
        except GatewayError as exc:
            _LOG.error("cannot apply the new config (%s): still running the old one", exc)
            live, new = self._build(old.config, old.connections, states), self.loaded
        live.runtime.carry_on(old.runtime)  # values, counters, windows, freshness
        live.hub.attach(live.runtime)  # with the values carried on
        live.hub.replaces(old.hub)
        old_rules = {rule.id: rule for rule in old.config.rules}
        new_rules = {rule.id: rule for rule in live.config.rules}
        self.timers.forget_rules(
            {rid for rid, rule in old_rules.items() if new_rules.get(rid) != rule}
        )
        self.control.live = live
        live.runtime.start(startup=False)
        if live.connections is not old.connections:
            self._start_connections(live.connections)
        self.loaded = new
        self.outbox.update(new.config.webhooks)
        self.recorder.configure(new.config.history, [rule.id for rule in new.config.rules])
        self.tokens.replace(new.config.server.tokens)
        self.access.update(new.config.server)
        self._timer_wake.set()
        _LOG.info("reloaded: %s", self._status_line())

    # ------------------------------------------------------------------ background tasks

    async def _run_timers(self) -> None:
        while True:
            self._timer_wake.clear()
            due = None
            if self.control is not None:
                runtime = self.control.live.runtime
                runtime.run_due()
                due = runtime.next_due()
            delay = 60.0 if due is None else min(max(due - time.time(), 0.0), 60.0)
            try:
                async with asyncio.timeout(delay):
                    await self._timer_wake.wait()
            except TimeoutError:
                pass

    async def _housekeeping(self) -> None:
        """Every 10 s the STATUS= line (with the outbox depth); hourly, prune old logs."""
        last_prune = 0.0
        while True:
            try:
                if time.monotonic() - last_prune > 3600:
                    await self.outbox.prune(self.config.server.replay_window)
                    last_prune = time.monotonic()
                self._outbox_rows = await self.outbox.size()
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
