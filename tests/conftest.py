"""Shared fixtures: free ports, webhook receivers, config files, the daemon as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import tty
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.api.access import AccessPolicy
from gateway.api.auth import TokenTable
from gateway.api.server import make_app
from gateway.app import Gateway
from gateway.config import load_config
from gateway.control import Control
from gateway.inputs.connections import Connections
from gateway.live import build_live
from gateway.outbox.service import Outbox
from gateway.rules.timers import TimerTable

T = TypeVar("T")

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    time: float
    status: int = 200  # what the receiver answered
    method: str = "POST"
    path: str = "/hook"  # with the query string

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP webhook receiver on 127.0.0.1; ``responses`` scripts its answers."""

    port: int
    received: list[Received] = field(default_factory=list)
    responses: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None
    delay: float = 0.0  # seconds before answering

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status, headers = self.responses.pop(0) if self.responses else (200, {})
        headers_seen = {k.lower(): v for k, v in request.headers.items()}
        self.received.append(
            Received(headers_seen, body, time.time(), status, request.method, request.path_qs)
        )
        self.arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=status, headers=headers, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)  # any method, any path
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"expected {count} webhooks, got {len(self.received)}")
            self.arrived.clear()
            try:
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self.arrived.wait()
            except TimeoutError:
                pass
        return self.received


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port())
    await r.start()
    yield r
    await r.stop()


class Board:
    """A pty whose slave end is the 'device'; a symlink is its stable by-id name."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        self.master = master
        path = os.ttyname(slave)
        os.close(slave)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(path)

    def unplug(self) -> None:
        os.close(self.master)
        self.master = -1

    def send(self, data: bytes) -> None:
        os.write(self.master, data)


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    b = Board(tmp_path / "usb-Arduino_1234-if00")
    yield b
    if b.master >= 0:
        os.close(b.master)


@contextlib.asynccontextmanager
async def running(config: Path, simulate: bool = True) -> AsyncIterator[Control]:
    """The gateway of ``config`` running in this event loop, ready for requests:
    its :class:`Control`, what the API sees."""
    async with started(config, simulate) as gateway:
        assert gateway.control is not None
        yield gateway.control


@contextlib.asynccontextmanager
async def started(
    config: Path, simulate: bool = True, signals: bool = True
) -> AsyncIterator[Gateway]:
    """The :class:`Gateway` of ``config`` running in this event loop, ready (for
    tests that reload it); stopped cleanly at the end."""
    gateway = Gateway(load_config(config), simulate=simulate)
    task = asyncio.create_task(gateway.run(handle_signals=signals))
    try:
        async with asyncio.timeout(15):
            while gateway.control is None or not gateway.control.ready:
                if task.done():
                    await task  # raises why it could not start
                await asyncio.sleep(0.01)
        yield gateway
    finally:
        gateway.stop()
        assert await task == 0


@contextlib.asynccontextmanager
async def control_client(
    config: Path, simulate: bool = True
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Control]]:
    """The API of ``config`` on a :class:`Control` built from its parts, with no
    daemon around it (no background tasks, no connections running), served by
    aiohttp's test server on port 0."""
    loaded = load_config(config)
    cfg = loaded.config
    timers = TimerTable(None)

    def runtime_handle(event: Any) -> None:
        runtime.handle(event)

    def reading(sensor: str, value: Any, source: str) -> None:
        runtime.reading(sensor, value, source)

    with Outbox(loaded.state_dir / "outbox.db", cfg.outbox, cfg.webhooks) as outbox:
        # the inputs report to the runtime built next (the closures look it up late)
        connections = Connections(cfg, reading, runtime_handle, outbox.store)
        live = build_live(
            cfg,
            connections,
            simulate=simulate,
            outbox=outbox,
            timers=timers,
            on_gpio=lambda s, v: reading(s, v, "gpio"),
        )
        runtime, devices = live.runtime, live.devices
        control = Control(live, outbox, timers, simulate)
        control.ready = True
        app = make_app(control, TokenTable(cfg.server.tokens), AccessPolicy.from_config(cfg.server))
        try:
            async with TestClient(TestServer(app, port=0)) as client:
                yield client, control
        finally:
            devices.close()


async def wait_until(
    read: Callable[[], Awaitable[T]], done: Callable[[T], Any], timeout: float = 5.0
) -> T:
    """Read until ``done(value)`` holds (polling every 20 ms); the last value.

    For what has no event to await: instead of a fixed sleep before an
    assertion, which is too short on a slow machine and too long elsewhere."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:g}s; last: {value!r:.300}")
        await asyncio.sleep(0.02)


async def value_of(value: T) -> T:
    """``value`` as an awaitable, for :func:`wait_until` on something already at hand."""
    return value


def edited(text: str, *changes: tuple[str, str]) -> str:
    """``text`` with each ``(old, new)`` replaced; an ``old`` that is not there fails
    the test (a plain ``str.replace`` would silently change nothing)."""
    for old, new in changes:
        assert old in text, f"{old!r} is not in the config text any more"
        text = text.replace(old, new)
    return text


def scenario_outcomes(
    directory: Path, config: str, scenarios: str
) -> list[tuple[str, bool, list[str]]]:
    """Run ``scenarios`` (YAML text) against ``config`` (YAML text) as ``gateway test``
    does: (name, passed, failures) of each."""
    from gateway.rules.scenarios import run_files

    config_path = directory / "gateway.yaml"
    config_path.write_text(config)
    scenarios_path = directory / "gateway.test.yaml"
    scenarios_path.write_text(scenarios)
    results, problems = run_files(load_config(config_path), [scenarios_path])
    assert problems == []
    return [(r.name, r.passed, r.failures) for r in results]


def write_config(directory: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def demo_like_config(
    tmp: Path, port: int, receiver_url: str, retry: str = "[200ms, 400ms]", extra: str = ""
) -> Path:
    """A config like the demo's, with a short auto-off and fast retries."""
    return write_config(
        tmp,
        f"""
        gateway:
          name: test-pi
          state_dir: {tmp / "state"}
          simulate: true
        sensors:
          hallway_motion: {{gpio: 17, kind: motion}}
        actuators:
          hallway_light: {{gpio: 27, kind: relay, active_high: false}}
        webhooks:
          home_hub:
            url: {receiver_url}
            secret: {SECRET}
            retry: {retry}
        server:
          listen: 127.0.0.1:{port}
          tokens:
            tester: {{token: {TOKEN}}}
        rules:
          - id: hallway_motion_light
            when: {{sensor: hallway_motion, to: on}}
            then:
              - actuate: hallway_light
                state: on
                for: 1s
              - webhook: home_hub
                event: motion.detected
                data: {{where: hallway, value: "{{{{ event.value }}}}"}}
        {extra}
        """,
    )


class Daemon:
    """``gateway run`` as a subprocess, as a user (or systemd) starts it."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log_path = config, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str, env: dict[str, str] | None = None) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(self.config), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.config.parent,
        )
        log.close()

    async def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
                try:
                    async with session.get(self.base + "/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"daemon not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_log(self, text: str, timeout: float = 10.0) -> None:
        """Until ``text`` is in the daemon's log (say, after a SIGHUP: "reloaded")."""
        await wait_until(lambda: value_of(self.log()), lambda log: text in log, timeout)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    async def request(
        self, method: str, path: str, body: Any = None, token: str = TOKEN
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base + path, json=body, headers=headers) as resp,
        ):
            return resp.status, await resp.json()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[[Path, int], Daemon]]:
    daemons: list[Daemon] = []

    def make(config: Path, port: int) -> Daemon:
        d = Daemon(config, port, tmp_path / f"daemon-{len(daemons)}.log")
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(10)
            except subprocess.TimeoutExpired:
                d.kill()


# Debian installs it in /usr/sbin, which is not on a user's PATH (only root's)
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")


class Mosquitto:
    """A real mosquitto broker on a free port, with persistence (sessions survive restarts)."""

    def __init__(self, directory: Path, extra: str = "") -> None:
        self.port = free_port()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {directory}/\n"
            "autosave_interval 1\n"
            f"log_dest file {directory}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            # run as root, mosquitto would switch to its own user and could not save
            f"user {getpass.getuser()}\n" + extra
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO or "mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # saves the persistence file
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()
