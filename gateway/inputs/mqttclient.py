"""aiomqtt's client, writing its packets from the event loop's own thread at once.

paho asks for a writer every time it queues a packet (each PUBACK, each
publish). aiomqtt answers with ``call_soon_threadsafe(add_writer)``, since
paho may ask from the thread that runs the connect; on the loop's thread
that is a write to the loop's self-pipe, a wake-up, an ``epoll_ctl`` to add
the writer and one to remove it, and a turn of the loop, for a 4-byte
PUBACK: as many system calls per MQTT message as the webhook it caused.
Asked on the loop's thread, this client writes the packet there and then
(as paho does itself without an outside loop), and registers a writer only
for what the socket did not take.

With a ``handler``, messages skip aiomqtt's queue: each is handled in the
turn of the loop that read it (the queue cost a task's wake-up a message).

With ``quick_ack`` (the outbox has a ``commit_window``: PUBACKs wait for it)
the socket's TCP acknowledgement goes out after every read. A broker with
Nagle's algorithm on (mosquitto's default, ``set_tcp_nodelay false``) holds
its next small PUBLISH until the last one is acknowledged at the TCP level,
and Linux delays that ACK until the gateway sends something: its PUBACK, a
commit window later. Measured at 200 msg/s with a 20 ms window: publish to
receiver p50 24.7 ms, 13.1 ms with ``set_tcp_nodelay true`` on the broker.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import Callable, Sequence
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt

_PUBACK = struct.Struct("!BBH")  # type, remaining length 2, packet id


class Client(aiomqtt.Client):
    def __init__(
        self,
        *args: Any,
        quick_ack: bool = False,
        handler: Callable[[mqtt.MQTTMessage], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.quick_ack = quick_ack and hasattr(socket, "TCP_QUICKACK")  # Linux
        self.handler = handler

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """With a ``handler``, each message goes to it as it is read, in the reader's own
        turn of the loop, instead of through aiomqtt's queue (``messages`` then stays
        empty): no task to wake and no aiomqtt ``Message`` to build for each."""
        if self.handler is None:
            super()._on_message(client, userdata, message)
        else:
            self.handler(message)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        super()._on_socket_open(client, userdata, sock)
        if self.quick_ack:  # after aiomqtt's reader is added: this one replaces it
            self._loop.call_soon_threadsafe(
                self._loop.add_reader, sock.fileno(), self._read, client, sock
            )

    def _read(self, client: mqtt.Client, sock: Any) -> None:
        """aiomqtt's reader, and the TCP acknowledgement sent at once."""
        try:
            client.loop_read()
            while (pending := getattr(client._sock, "pending", None)) is not None and pending():
                client.loop_read()  # TLS: what the last read decrypted and left
            if client._sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except Exception as exc:
            self._broken(exc)

    def acknowledge(self, mids: Sequence[int]) -> None:
        """PUBACK these QoS 1 messages (``manual_ack``) in one write to the socket, when
        on the loop's thread with nothing of paho's queued ahead; what the socket does
        not take queues in paho as one packet. Else each through paho's ``ack``.

        paho's ``ack`` queues a packet, asks for a writer, writes and gives the
        writer back for each message: most of the cost of a message's PUBACK."""
        paho = self._client
        sock = paho._sock
        if not mids:
            return
        if paho._out_packet or sock is None or not self._on_loop():
            for mid in mids:
                paho.ack(mid, 1)
            return
        packet = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids])
        try:
            sent = sock.send(packet)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            sent = 0
        except OSError:  # gone: paho's own write finds out, and says so
            sent = 0
        with paho._msgtime_mutex:  # what paho's keepalive goes by
            paho._last_msg_out = mqtt.time_func()
        if sent < len(packet):
            paho._packet_queue(mqtt.PUBACK, packet[sent:], 0, 0)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if not self._on_loop():  # the connect's thread: aiomqtt's way
            super()._on_socket_register_write(client, userdata, sock)
            return
        # paho's own test before it writes at once: not from inside one of its callbacks
        # (a write may call on_publish, which takes that lock)
        if client._in_callback_mutex.acquire(False):
            client._in_callback_mutex.release()
            self._write(client)  # paho unregisters the writer when all is written ...
            if not client.want_write():
                return
        # ... and asks for none when something is left (it thinks it has one)
        self._loop.add_writer(sock.fileno(), self._write, client)

    def _write(self, client: mqtt.Client) -> None:
        try:
            client.loop_write()  # registers the writer again while something is left
        except Exception as exc:
            self._broken(exc)

    def _broken(self, exc: Exception) -> None:
        """A read or write failed: the connection is gone, as aiomqtt's own say."""
        if not self._disconnected.done():
            self._disconnected.set_exception(exc)
