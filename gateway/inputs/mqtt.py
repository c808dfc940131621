"""The MQTT link: sensor topics and ``mqtt:`` triggers in, ``mqtt_publish`` out.

aiomqtt does not reconnect by itself: the client is re-entered in a loop with
a capped backoff, forever, every topic subscribed again on each connection.
The session is persistent (``clean_session: false``, or on MQTT 5
``clean_start: false`` with a session expiry), QoS 1, a fixed client id: what
is published while the gateway is away arrives when it is back. A retained
``online``/``offline`` status topic (the last will) says whether it runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config.connections import MqttSection, MqttSensor
from gateway.events import Value, topic_matches
from gateway.inputs import OnLost, nothing_lost
from gateway.inputs.mqttclient import Client
from gateway.inputs.payloads import as_reading, decode
from gateway.interfaces import HubLink
from gateway.ratelog import RateLimitedLog
from gateway.templates import TemplateError, render

_LOG = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
DRAIN_TIMEOUT = 2.0  # on a clean stop, acknowledge what is committed before leaving
PENDING_MAX = 1000  # publishes kept while the broker is away
MAX_MEMBERS = 1000  # members of split sensors: a topic flood cannot grow memory forever
MEMBER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")  # a sensor name


class Commits(Protocol):
    """Where a message's webhooks are committed (the outbox): only then is it acked."""

    commit_window: float  # seconds a commit waits for more: PUBACKs wait as long

    def mark(self) -> int: ...
    def lost_between(self, since: int, upto: int) -> int: ...
    def when_committed(self, number: int, callback: Callable[[int], object]) -> None: ...


@dataclass(frozen=True, slots=True)
class _Unacked:
    mid: int
    qos: int
    before: int  # the outbox's mark before the message was handled ...
    after: int  # ... and after


class _Acks:
    """One connection's PUBACKs, in the order its messages came, each sent once the
    webhooks the message's rules queued are committed: from the commit's own call on
    the loop (no task to wake for each). If any could not be committed, the message
    is not acknowledged and the connection is dropped, so the broker sends it again."""

    def __init__(self, link: MqttLink, client: Client, commits: Commits) -> None:
        self.link = link
        self.client = client
        self.commits = commits
        self.waiting: deque[_Unacked] = deque()
        self.asked = False  # the commits will call settle
        self.closed = False  # the connection is gone: its message ids mean nothing now

    def add(self, message: _Unacked) -> None:
        self.waiting.append(message)
        if not self.asked:
            self.asked = True
            self.commits.when_committed(message.after, self.settle)

    def settle(self, upto: int) -> None:
        """Every submission up to ``upto`` is committed or lost."""
        self.asked = False
        if self.closed:
            return
        waiting, commits = self.waiting, self.commits
        lost = 0
        acked: list[int] = []
        while waiting and waiting[0].after <= upto:
            message = waiting.popleft()
            if commits.lost_between(message.before, message.after):
                lost += 1
            elif message.qos == 1:
                acked.append(message.mid)
            else:  # QoS 2: paho's PUBCOMP, after the PUBACKs before it
                self.client.acknowledge(acked)
                acked = []
                self.client._client.ack(message.mid, message.qos)
        if acked:
            self.client.acknowledge(acked)
        if lost:
            self.link.unacknowledged += lost
            _LOG.error(
                "mqtt: %d message(s) not acknowledged: the webhooks they caused could not be "
                "stored; reconnecting so the broker sends them again",
                lost,
            )
            self.close()
            self.client._client.disconnect()
        if waiting and not self.closed:
            self.asked = True
            commits.when_committed(waiting[0].after, self.settle)

    def close(self) -> None:
        self.closed = True
        self.waiting.clear()


class MqttLink:
    """One connection to the broker for every MQTT sensor, trigger and publish.

    With ``commits`` (the outbox), a QoS 1 message is acknowledged (PUBACK)
    only after the webhooks its rules queued are committed: paho's
    ``manual_ack``, which aiomqtt 2.x does not expose yet (its issue #345),
    set on the paho client it wraps. A crash in between leaves the message
    unacknowledged, and the broker sends it again to the persistent session.
    If the outbox could not commit them, the message is not acknowledged and
    the link reconnects, so the broker sends it again.
    """

    def __init__(
        self,
        config: MqttSection,
        gateway_name: str,
        sensors: dict[str, MqttSensor],
        trigger_topics: list[str],
        on_reading: Callable[[str, Value], None],
        on_message: Callable[[str, Any], None],
        commits: Commits | None = None,
        on_lost: OnLost = nothing_lost,
        on_member: Callable[[str, str, Value], None] | None = None,
    ) -> None:
        self.config = config
        self.on_lost = on_lost
        self.on_member = on_member or (lambda member, group, value: on_reading(member, value))
        self.members: dict[str, str] = {}  # members of split sensors -> their sensor
        self.commits = commits
        self.unacknowledged = 0  # messages whose webhooks could not be committed
        self.sensors = sensors
        self.trigger_topics = trigger_topics
        self.on_reading = on_reading
        self.on_message = on_message
        self.client_id = config.client_id or f"edge-gateway-{gateway_name}"
        self.status_topic = config.status(gateway_name)
        self.state = "disconnected"
        self._up = False
        self.messages = self.reconnects = 0
        self.bad_values = 0  # payloads that are not a value of their sensor's kind
        self.malformed = 0  # messages that could not be handled at all
        self._bad_log = RateLimitedLog(_LOG)
        self._client: aiomqtt.Client | None = None
        self._pending: deque[tuple[str, str, int, bool]] = deque(maxlen=PENDING_MAX)
        self._caught_up = asyncio.Event()  # set once a connect has sent what was queued
        self._tasks: set[asyncio.Task[None]] = set()
        self.hub: HubLink | None = None  # state topics, commands, discovery (set per config)

    @property
    def filters(self) -> dict[str, int]:
        wanted: dict[str, int] = {s.mqtt: s.qos for s in self.sensors.values()}
        hub = self.hub
        extra = [*hub.command_topics(), *hub.discovery_filters()] if hub is not None else []
        for topic in [*self.trigger_topics, *extra]:
            wanted[topic] = max(wanted.get(topic, 1), 1)
        return wanted

    def _client_args(self) -> dict[str, Any]:
        c = self.config
        args: dict[str, Any] = {
            "identifier": self.client_id,
            "username": c.username,
            "password": c.password.get_secret_value() if c.password else None,
            "keepalive": c.keepalive,
            "will": aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True),
            "timeout": 10,
        }
        if c.version == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = int(c.session_expiry)
            args.update(
                protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=properties
            )
        else:
            args.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
        if c.tls:
            tls = c.tls if not isinstance(c.tls, bool) else None
            context = ssl.create_default_context(cafile=tls.ca if tls else None)
            if tls and tls.cert:
                context.load_cert_chain(tls.cert, tls.key)
            if tls and tls.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            args["tls_context"] = context
        return args

    async def run(self) -> None:
        """Stay connected until cancelled; publish ``offline`` on the way out."""
        delay = BACKOFF_FIRST
        while True:
            try:
                commits = self.commits
                quick_ack = commits is not None and commits.commit_window > 0
                client = Client(
                    self.config.host, self.config.port, quick_ack=quick_ack, **self._client_args()
                )
                acks = _Acks(self, client, commits) if commits is not None else None
                client.handler = partial(self._received, acks)  # also during the connect
                client.pending_calls_threshold = PENDING_MAX  # a reload republishes every state
                if commits is not None:
                    client._client.manual_ack_set(True)  # before any message can arrive
                async with client:
                    delay = BACKOFF_FIRST
                    try:
                        await self._connected(client)
                        _cancel_if_asked()
                        await _disconnected(client)
                    except asyncio.CancelledError:  # a clean shutdown (also while announcing):
                        # say so before leaving, or the broker keeps "online" (no will is sent)
                        self._client = None
                        await self._drain()
                        await _say_offline(client, self.status_topic)
                        raise
                    finally:
                        if acks is not None:
                            acks.close()
                        self._client = None
                        self.state = "disconnected"
            except aiomqtt.MqttError as exc:
                self._client = None
                if self._up or self.reconnects == 0:
                    _LOG.warning(
                        "mqtt: %s:%d: %s; reconnecting", self.config.host, self.config.port, exc
                    )
                    self.on_lost(list(self.sensors), "mqtt broker lost")
                self._up = False
                self.state = "disconnected"
                self.reconnects += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    def _received(self, acks: _Acks | None, message: mqtt.MQTTMessage) -> None:
        """One message, as paho reads it (its acknowledgement waits for the commits)."""
        commits = self.commits
        before = commits.mark() if commits is not None else 0
        try:
            topic = message.topic
        except UnicodeDecodeError:  # a broker lets no such topic through: counted, acked
            self.messages += 1
            self.malformed += 1
            self._bad_log.warning("mqtt: a topic that is not UTF-8 (%d so far)", self.malformed)
        else:
            self.handle(topic, message.payload)
        if acks is not None and commits is not None and message.qos > 0:
            acks.add(_Unacked(message.mid, message.qos, before, commits.mark()))

    async def _drain(self) -> None:
        """Acknowledge what is committed before a clean stop (the rest comes again)."""
        if self.commits is None:
            return
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.commits.when_committed(self.commits.mark(), partial(_resolve, done))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, DRAIN_TIMEOUT)  # the acks' calls come before it

    async def _connected(self, client: aiomqtt.Client) -> None:
        self._caught_up.clear()
        self.state = "connected"
        self._up = True  # until the next MqttError: state is "disconnected" in between
        config = self.config
        _LOG.info("mqtt: connected to %s:%d as %s", config.host, config.port, self.client_id)
        await client.publish(self.status_topic, b"online", qos=1, retain=True)
        if wanted := list(self.filters.items()):  # one SUBSCRIBE for all
            await client.subscribe(wanted)
        if self.hub is not None:  # announcements and every state, each time
            for topic, payload in self.hub.on_connect():
                await client.publish(topic, payload.encode(), qos=1, retain=True)
        while self._pending:  # also what is published meanwhile: it queues behind
            topic, payload, qos, retain = self._pending[0]
            await client.publish(topic, payload.encode(), qos=qos, retain=retain)
            self._pending.popleft()
        self._client = client  # only now publish directly: never ahead of the queue
        self._caught_up.set()

    def handle(self, topic: str, raw: bytes | bytearray | Any) -> None:
        """One message: never raises, whatever the payload (a bad one is counted)."""
        self.messages += 1
        try:
            self._handle(topic, raw)
        except Exception as exc:
            self.malformed += 1
            self._bad_log.warning(
                "mqtt: a message on %s could not be handled (%s: %s); %d so far",
                topic[:120],
                type(exc).__name__,
                str(exc)[:120],
                self.malformed,
            )

    def _handle(self, topic: str, raw: bytes | bytearray | Any) -> None:
        hub = self.hub
        if hub is not None:
            data = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw).encode()
            if (actuator := hub.command_topics().get(topic)) is not None:
                hub.command(actuator, data, topic)
                return
            if any(topic_matches(ours, topic) for ours in hub.discovery_filters()):
                hub.seen(topic, data)
                return
        payload = decode(bytes(raw)) if isinstance(raw, bytes | bytearray) else raw
        for name, sensor in self.sensors.items():
            if not topic_matches(sensor.mqtt, topic):
                continue
            value: Any = payload
            if sensor.value is not None:
                try:
                    value = render(sensor.value, {"payload": payload, "topic": topic})
                except TemplateError as exc:
                    self.bad_values += 1
                    self._bad_log.warning(
                        "mqtt: sensor %s: %s (payload %r)", name, exc, str(payload)[:80]
                    )
                    continue
            reading = as_reading(value, sensor)
            if reading is None:
                self.bad_values += 1
                self._bad_log.warning(
                    "mqtt: sensor %s: %r on %s is not a %s value",
                    name,
                    str(value)[:80],
                    topic,
                    sensor.kind,
                )
                continue
            if not sensor.splits:
                self.on_reading(name, reading)
            elif (member := self._member(name, sensor, topic, payload)) is not None:
                self.on_member(member, name, reading)
        if any(topic_matches(t, topic) for t in self.trigger_topics):
            self.on_message(topic, payload)

    def _member(self, name: str, sensor: MqttSensor, topic: str, payload: Any) -> str | None:
        """The member of split sensor ``name`` that ``topic`` reads: as its ``name:``
        template says, or NAME_LEVEL with the levels its wildcards matched."""
        why = None
        if sensor.name is not None:
            try:
                member = str(render(sensor.name, {"payload": payload, "topic": topic}))
            except TemplateError as exc:
                member, why = "", str(exc)
        else:
            parts = sensor.mqtt.split("/")
            levels = topic.split("/")
            wild = [
                lvl for i, lvl in enumerate(levels) if i >= len(parts) or parts[i] in ("+", "#")
            ]
            member = "_".join([name, *wild])
        if why is None and MEMBER.fullmatch(member) is None:
            why = f"{member[:80]!r} is not a sensor name"
        elif why is None and member not in self.members and len(self.members) >= MAX_MEMBERS:
            why = f"more than {MAX_MEMBERS} members; {member} ignored"
        if why is not None:
            self.bad_values += 1
            self._bad_log.warning("mqtt: sensor %s: %s (topic %s)", name, why, topic[:120])
            return None
        self.members[member] = name
        return member

    async def flush(self) -> None:
        """Before a clean stop (the caller bounds it): a connect's queue, then the rest;
        also what was queued while the first connect is still under way."""
        if self.state == "connected" or (self._pending and self.reconnects == 0):
            await self._caught_up.wait()
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> None:
        """Publish now, or as soon as the broker is back (at most 1,000 kept)."""
        client = self._client
        if client is None:
            self._pending.append((topic, payload, qos, retain))
            return

        async def send() -> None:
            try:
                await client.publish(topic, payload.encode(), qos=qos, retain=retain)
            except aiomqtt.MqttError as exc:
                _LOG.warning("mqtt: publish to %s failed (%s); kept for the reconnect", topic, exc)
                self._pending.append((topic, payload, qos, retain))

        task = asyncio.get_running_loop().create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _resolve(future: asyncio.Future[int], value: int) -> None:
    if not future.done():
        future.set_result(value)


async def _disconnected(client: aiomqtt.Client) -> None:
    """Until the connection drops: raises the :class:`aiomqtt.MqttError` it dropped with."""
    gone = client._disconnected
    await asyncio.wait([gone])  # not ``await gone``: a cancel must leave aiomqtt's own future
    cause = None if gone.cancelled() else gone.exception()
    raise aiomqtt.MqttError("disconnected") from cause


def _cancel_if_asked() -> None:
    """Raise the cancellation Python 3.11's ``asyncio.wait_for`` (inside aiomqtt's
    subscribe and publish) loses when the answer arrives as the task is cancelled
    (fixed in 3.12): without this a stop during the connect never ends."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _say_offline(client: aiomqtt.Client, topic: str) -> None:
    with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
        await asyncio.wait_for(client.publish(topic, b"offline", qos=1, retain=True), 2)
