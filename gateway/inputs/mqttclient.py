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
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt


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

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:  # the connect's thread: aiomqtt's way
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
