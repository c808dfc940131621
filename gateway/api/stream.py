"""``GET /api/v1/events``: what happens in the gateway, live, as Server-Sent Events.

The stream is an observer of the runtime (sensor changes, actuator switches
with who, rule traces), a listener of the outbox (queued, delivered, failed,
dead) and of the log (warnings and errors), and looks at the inputs'
connection states once a second. Each event is encoded once, whoever
listens; each client has a bounded buffer, and a client that does not keep
up is dropped (counted) rather than slowing anything down.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway import safejson
from gateway.events import UNAVAILABLE, Value
from gateway.rules.traces import Trace

_LOG = logging.getLogger(__name__)

BUFFER = 2048  # events a client may be behind before it is dropped
GATHER = 0.05  # seconds a client's events gather before one write: a burst costs few wakeups
MAX_CLIENTS = 32
PING_EVERY = 15.0  # seconds: a comment line keeps proxies and the browser from timing out
INPUTS_EVERY = 1.0


class _Client:
    def __init__(self, transport: asyncio.Transport | None) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(BUFFER)
        self.transport = transport
        self.dropped = False

    def end(self, grace: float = 0.0) -> None:
        """Its handler ends the response at the next event; after ``grace`` seconds
        the connection is cut (a write stuck on the full socket of a client that
        does not read fails: it cannot hold the handler, nor a stop)."""
        with contextlib.suppress(asyncio.QueueEmpty):
            self.queue.get_nowait()  # room for the end mark
        self.queue.put_nowait(None)
        if self.transport is not None:
            if grace:
                asyncio.get_running_loop().call_later(grace, self.transport.abort)
            else:
                self.transport.abort()


class EventStream:
    """Fans events out to the connected clients."""

    def __init__(self, name: str = "") -> None:
        self.name = name  # the gateway's, said in the first event
        self.clients: set[_Client] = set()
        self.sent = 0
        self.dropped = 0  # clients dropped for falling behind
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._inputs: dict[str, str] = {}
        self.handler = _LogHandler(self)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Events told from other threads are handed to ``loop`` (the gateway's)."""
        self._loop, self._thread = loop, threading.get_ident()

    # ------------------------------------------------------------------ sources

    def sensor_changed(self, sensor: str, value: Value) -> None:
        if self.clients:
            gone = value == UNAVAILABLE
            self.publish(
                "sensor",
                {"id": sensor, "value": None if gone else value, "available": not gone},
            )

    def actuator_switched(self, actuator: str, state: bool | float, who: str) -> None:
        if self.clients:
            self.publish("actuator", {"id": actuator, "state": state, "who": who})

    def rule_traced(self, trace: Trace) -> None:
        if self.clients and trace.result != "running":
            summary = {
                "id": trace.id,
                "rule": trace.rule,
                "trigger": trace.trigger,
                "result": trace.result,
                "why": trace.why,
                "steps": [f"{s.action}: {s.outcome}" for s in trace.steps],
            }
            self.publish("trace", summary)

    def webhook(self, what: dict[str, Any]) -> None:
        if self.clients:
            self.publish("webhook", what)

    def inputs(self, states: dict[str, dict[str, Any]]) -> None:
        """Publish the inputs whose connection state changed since the last look."""
        now = {name: str(info.get("state")) for name, info in states.items()}
        for name, state in now.items():
            if self._inputs.get(name) != state and name in self._inputs:
                self.publish("input", {"id": name, "state": state})
        self._inputs = now

    # ------------------------------------------------------------------ fan-out

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Encode once, queue for every client (from any thread)."""
        if self._thread is not None and threading.get_ident() != self._thread:
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                self._loop.call_soon_threadsafe(self.publish, kind, data)
            return
        if not self.clients:
            return
        doc = safejson.dumps({"time": time.time(), **data})
        frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (next(self._ids), kind.encode(), doc)
        for client in list(self.clients):
            try:
                client.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._drop(client)
        self.sent += 1

    def _drop(self, client: _Client) -> None:
        self.clients.discard(client)
        client.dropped = True
        self.dropped += 1
        client.end()
        _LOG.warning("event stream: a client fell %d events behind and was dropped", BUFFER)

    def close(self) -> None:
        """End every client's stream (a stop: the server would wait for them)."""
        for client in list(self.clients):
            self.clients.discard(client)
            client.end(grace=1.0)

    async def watch_inputs(self, states: Callable[[], dict[str, dict[str, Any]]]) -> None:
        while True:
            if self.clients:
                self.inputs(states())
            else:
                self._inputs = {}
            await asyncio.sleep(INPUTS_EVERY)

    # ------------------------------------------------------------------ the endpoint

    async def serve(self, request: web.Request) -> web.StreamResponse:
        if len(self.clients) >= MAX_CLIENTS:
            busy = {"code": "busy", "message": f"{MAX_CLIENTS} event stream clients already"}
            return web.json_response({"error": busy}, status=503, headers={"Retry-After": "10"})
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: do not hold the events back
            }
        )
        await response.prepare(request)
        client = _Client(request.transport)
        self.clients.add(client)
        try:
            await response.write(b"retry: 3000\n\n")
            hello = {"name": self.name, "clients": len(self.clients)}
            await response.write(b"event: hello\ndata: %s\n\n" % safejson.dumps(hello))
            while True:
                try:
                    async with asyncio.timeout(PING_EVERY):
                        frame = await client.queue.get()
                except TimeoutError:
                    frame = b": ping\n\n"
                if frame is not None and GATHER:
                    await asyncio.sleep(GATHER)
                frames = [frame]  # and all that waited meanwhile: one write, not one each
                while frames[-1] is not None and not client.queue.empty():
                    frames.append(client.queue.get_nowait())
                data = b"".join(f for f in frames if f is not None)
                if data:
                    await response.write(data)
                if frames[-1] is None:  # ended: dropped for falling behind, or a stop
                    break
        except (ConnectionResetError, ConnectionError):
            pass  # the client left, or was cut off
        finally:
            self.clients.discard(client)
        return response


class _LogHandler(logging.Handler):
    """Warnings and errors of the gateway's loggers, to the stream."""

    def __init__(self, stream: EventStream) -> None:
        super().__init__(logging.WARNING)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        if not self.stream.clients or record.name == __name__:
            return
        try:
            message = record.getMessage()[:500]
        except Exception:  # a bad format: the line is not for us to fix
            return
        what = {"level": record.levelname.lower(), "logger": record.name, "message": message}
        self.stream.publish("log", what)
