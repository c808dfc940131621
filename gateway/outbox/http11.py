"""A lean HTTP/1.1 client for plain ``http://`` endpoints.

Delivery sends one small request and reads one small answer, thousands of
times a second in a burst. Through ``aiohttp.ClientSession.request`` that
costs about twice the CPU of the request itself (its request and response
objects, multidicts, tracing hooks and timers); this client writes the
request in one ``write`` and parses the answer as it arrives, on a protocol
of its own, with keep-alive connections pooled per host and port. What it
does not do, aiohttp still does: TLS (``https://``), credentials in the URL,
proxies. Delivery picks the path per URL.

What it keeps of HTTP/1.1: ``Content-Length``, chunked and read-until-close
bodies, ``1xx`` answers skipped, ``Connection: close`` and HTTP/1.0 answers
end the connection, and a request on a kept-alive connection that the
server closed meanwhile is sent once more on a new one (a webhook carries
its ``webhook-id``, so receivers already see each message at least once).
Of the answer's body only the first ``KEEP_BODY`` bytes are kept (for the
attempt log); the rest is read and dropped so the connection can be reused.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

KEEP_BODY = 2048  # bytes of an answer's body kept for the attempt log
HEAD_LIMIT = 64 * 1024  # an answer's status line and headers together
IDLE_LIMIT = 15.0  # seconds a kept-alive connection may idle before it is closed
IDLE_PER_HOST = 64  # kept-alive connections per host and port
_NO_BODY = frozenset({204, 304})
_UNSAFE = re.compile(r"[\r\n\x00]")
_NOT_TOKEN = re.compile(r"[\x00-\x20:()<>@,;\\\"/\[\]?={}\x7f]")
_NEVER_SENT = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class ConnectError(OSError):
    """No connection to the endpoint (refused, unreachable, DNS)."""


class ConnectTimeout(TimeoutError):
    """No connection within the connect timeout."""


class AnswerError(Exception):
    """The server's answer is not HTTP/1.x, or it closed the connection midway."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes  # at most KEEP_BODY bytes
    retry_after: str | None


class _Connection(asyncio.Protocol):
    """One TCP connection; the request side pulls what it needs from ``buffer``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.idle_since = 0.0
        self.used = False  # a request went over it before: the server may have closed it
        self.answered = False  # the current answer's headers came
        self.lost: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.on_bytes: Callable[[], None] | None = None  # a Sent's, instead of the waiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof, self.lost = True, exc
        self._wake()

    def _wake(self) -> None:
        if self.on_bytes is not None:
            self.on_bytes()
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def reusable(self) -> bool:
        """Another request may go over it: open, nothing read that was not asked for,
        and the last request all sent (a server may answer, a 413 say, before it read
        the body: the next request must not follow the rest of that body)."""
        transport = self.transport
        return (
            not self.eof
            and not self.buffer
            and transport is not None
            and not transport.is_closing()
            and not transport.get_write_buffer_size()
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def more(self) -> None:
        """Wait for more bytes (:class:`AnswerError` once the server closed)."""
        if self.eof:
            why = f" ({self.lost})" if self.lost else ""
            raise AnswerError(f"the connection closed before the answer ended{why}")
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def until(self, separator: bytes, limit: int, what: str) -> bytes:
        """The bytes up to ``separator`` (dropped from the buffer with it)."""
        start = 0
        while (end := self.buffer.find(separator, start)) < 0:
            if len(self.buffer) > limit:
                raise AnswerError(f"{what} longer than {limit} bytes")
            start = max(0, len(self.buffer) - len(separator) + 1)
            await self.more()
        line = bytes(self.buffer[:end])
        del self.buffer[: end + len(separator)]
        return line

    async def take(self, count: int) -> bytes:
        """Up to ``count`` bytes, at least one."""
        while not self.buffer:
            await self.more()
        chunk = bytes(self.buffer[:count])
        del self.buffer[:count]
        return chunk


class Client:
    """Keep-alive connections per (host, port), and one request at a time on each."""

    def __init__(self, user_agent: str) -> None:
        self.user_agent = user_agent
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def request(
        self,
        method: str,
        host: str,
        port: int,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        connect_timeout: float,
    ) -> Answer:
        """Send one request and read its answer (the caller bounds the whole of it).

        Raises :class:`ConnectError` or :class:`ConnectTimeout` when there is no
        connection, :class:`AnswerError` for an answer that is not HTTP, and
        ``OSError`` when the connection breaks."""
        head = _head(method, host, port, target, headers, len(body), self.user_agent)
        conn = self._reuse((host, port))
        while True:
            if conn is None:
                conn = await _connect(host, port, connect_timeout)
            fresh, conn.used, conn.answered = not conn.used, True, False
            try:
                assert conn.transport is not None
                conn.transport.write(head + body)
                answer, keep = await _answer(conn, method)
            except (AnswerError, ConnectionError):
                conn.close()
                if fresh or conn.answered or conn.buffer:
                    raise
                conn = None  # the server closed a kept-alive connection meanwhile: once more
                continue
            except BaseException:
                conn.close()
                raise
            if keep and conn.reusable:
                self._keep((host, port), conn)
            else:
                conn.close()
            return answer

    def send_kept(
        self,
        method: str,
        host: str,
        port: int,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        done: Callable[[Answer | Exception | None], None],
    ) -> Sent | None:
        """:meth:`request` without a task, when a kept-alive connection is idle: the
        request is written now, and ``done`` called from the connection's protocol with
        the answer as it arrives (:class:`AnswerError` or ``OSError`` if it breaks;
        ``None`` if the server had closed the connection before answering: then send
        it again with :meth:`request`). ``None``, and nothing sent, when no connection
        is idle; ``ValueError`` for a header that would split the request."""
        head = _head(method, host, port, target, headers, len(body), self.user_agent)
        conn = self._reuse((host, port))
        if conn is None:
            return None
        sent = Sent(self, conn, (host, port), method, done)
        conn.answered = False
        conn.on_bytes = sent.arrived
        assert conn.transport is not None
        conn.transport.write(head + body)
        return sent

    def _reuse(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.reusable and now - conn.idle_since < IDLE_LIMIT:
                return conn
            conn.close()
        return None

    def _keep(self, key: tuple[str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= IDLE_PER_HOST:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


class Sent:
    """A request written by :meth:`Client.send_kept`, its answer on the way."""

    def __init__(
        self,
        client: Client,
        conn: _Connection,
        key: tuple[str, int],
        method: str,
        done: Callable[[Answer | Exception | None], None],
    ) -> None:
        self.client, self.conn, self.key, self.method = client, conn, key, method
        self.done: Callable[[Answer | Exception | None], None] | None = done
        self._reading: asyncio.Task[None] | None = None

    def abort(self) -> None:
        """Stop waiting (a timeout, a stop): the connection is closed, ``done`` not called."""
        self.done = None
        self.conn.on_bytes = None
        if self._reading is not None:
            self._reading.cancel()
        self.conn.close()

    def arrived(self) -> None:
        """Bytes came, or the end: an answer whole in the buffer (the usual small one,
        with a Content-Length) is taken at once; any other is read by ``_answer``."""
        conn = self.conn
        try:
            whole = _answer_now(conn, self.method)
        except _Later:
            conn.on_bytes = None  # chunked, 1xx, a large body: read it the usual way
            self._reading = asyncio.get_running_loop().create_task(self._read())
            return
        except AnswerError as exc:
            self._end(exc)
            return
        if whole is not None:
            answer, keep = whole
            if keep and conn.reusable:
                conn.on_bytes = None
                self.client._keep(self.key, conn)
                self._end(answer, close=False)
            else:
                self._end(answer)
        elif conn.eof:  # closed before the answer was whole
            if not conn.buffer and not conn.answered:
                self._end(None)  # ... before any of it: the server closed it meanwhile
            else:
                why = f" ({conn.lost})" if conn.lost else ""
                self._end(AnswerError(f"the connection closed before the answer ended{why}"))

    async def _read(self) -> None:
        conn = self.conn
        try:
            answer, keep = await _answer(conn, self.method)
        except (AnswerError, OSError) as exc:
            self._end(exc)
            return
        if keep and conn.reusable:
            self.client._keep(self.key, conn)
            self._end(answer, close=False)
        else:
            self._end(answer)

    def _end(self, result: Answer | Exception | None, close: bool = True) -> None:
        done, self.done = self.done, None
        self.conn.on_bytes = None
        if close:
            self.conn.close()
        if done is not None:
            done(result)


class _Later(Exception):
    """Not an answer to take at once (see _answer_now)."""


def _answer_now(conn: _Connection, method: str) -> tuple[Answer, bool] | None:
    """The answer, and whether the connection may be kept, if it is whole in the buffer
    and plain (no 1xx, not chunked, a Content-Length of at most ``HEAD_LIMIT``);
    ``None`` if more must come first; :class:`_Later` for any other answer (the
    buffer is left as it is for ``_answer``)."""
    buffer = conn.buffer
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > HEAD_LIMIT:
            raise AnswerError(f"the answer's headers longer than {HEAD_LIMIT} bytes")
        return None
    conn.answered = True
    status, version, fields = _parse_head(bytes(buffer[:end]))
    connection = fields.get("connection", "").lower()
    keep = "close" not in connection if version == "1.1" else "keep-alive" in connection
    if 100 <= status < 200 or "transfer-encoding" in fields:
        raise _Later
    if method == "HEAD" or status in _NO_BODY:
        length = 0
    elif "content-length" in fields:
        length = _length(fields["content-length"])
    else:
        raise _Later  # the body ends when the connection does
    if length > HEAD_LIMIT:
        raise _Later
    start = end + 4
    if len(buffer) - start < length:
        return None
    body = bytes(buffer[start : start + min(length, KEEP_BODY)])
    del buffer[: start + length]
    return Answer(status, body, fields.get("retry-after")), keep


async def _connect(host: str, port: int, within: float) -> _Connection:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(within):
            _, conn = await loop.create_connection(lambda: _Connection(loop), host, port)
    except TimeoutError as exc:
        raise ConnectTimeout(f"no connection within {within:g}s") from exc
    except OSError as exc:
        raise ConnectError(*exc.args) from exc
    return conn


def _head(
    method: str,
    host: str,
    port: int,
    target: str,
    headers: Mapping[str, str],
    length: int,
    user_agent: str,
) -> bytes:
    """The request line and headers, ``ValueError`` for a header that would split them."""
    name = f"[{host}]" if ":" in host else host  # an IPv6 address
    fields = {
        "host": ("Host", name if port == 80 else f"{name}:{port}"),
        "user-agent": ("User-Agent", user_agent),
        "accept": ("Accept", "*/*"),
    }
    for field, value in headers.items():
        if _UNSAFE.search(value) or _NOT_TOKEN.search(field) or not field:
            raise ValueError(f"header {field[:40]!r}: a line break, NUL or bad name")
        key = field.lower()
        if key not in _NEVER_SENT:
            fields[key] = (field, value)
    fields["content-length"] = ("Content-Length", str(length))
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{field}: {value}" for field, value in fields.values())
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8")


async def _answer(conn: _Connection, method: str) -> tuple[Answer, bool]:
    """Read one answer; also whether the connection may carry another request."""
    while True:
        head = await conn.until(b"\r\n\r\n", HEAD_LIMIT, "the answer's headers")
        conn.answered = True
        status, version, fields = _parse_head(head)
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue and the like: the answer follows
        break
    connection = fields.get("connection", "").lower()
    keep = "close" not in connection if version == "1.1" else "keep-alive" in connection
    kept = bytearray()
    if method == "HEAD" or status in _NO_BODY or status == 101:
        keep = keep and status != 101
    elif "chunked" in fields.get("transfer-encoding", "").lower():
        await _chunked(conn, kept)
    elif "content-length" in fields:
        await _exactly(conn, _length(fields["content-length"]), kept)
    else:  # the body ends when the connection does
        keep = False
        try:
            while True:
                _keep_start(kept, await conn.take(65536))
        except AnswerError:
            pass
    return Answer(status, bytes(kept), fields.get("retry-after")), keep


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[0]) != 8:
        raise AnswerError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    code = parts[1]
    if len(code) != 3 or not (code.isascii() and code.isdigit()):
        raise AnswerError(f"bad status line: {lines[0][:80]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise AnswerError(f"bad header line: {line[:80]!r}")
        key, value = name.lower(), value.strip()
        if key in fields:
            if key == "content-length" and fields[key] != value:
                raise AnswerError("two different Content-Length headers")
            if key != "content-length":
                value = f"{fields[key]}, {value}"
        fields[key] = value
    return int(code), parts[0][5:], fields


def _length(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise AnswerError(f"bad Content-Length: {text[:40]!r}")
    return int(text)


def _keep_start(kept: bytearray, chunk: bytes) -> None:
    if len(kept) < KEEP_BODY:
        kept += chunk[: KEEP_BODY - len(kept)]


async def _exactly(conn: _Connection, count: int, kept: bytearray) -> None:
    while count > 0:
        chunk = await conn.take(min(count, 65536))
        count -= len(chunk)
        _keep_start(kept, chunk)


async def _chunked(conn: _Connection, kept: bytearray) -> None:
    while True:
        line = await conn.until(b"\r\n", 1024, "a chunk's size line")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise AnswerError(f"bad chunk size: {size_text[:40]!r}") from None
        if size < 0:
            raise AnswerError(f"bad chunk size: {size_text[:40]!r}")
        if size == 0:
            while await conn.until(b"\r\n", HEAD_LIMIT, "the answer's trailers"):
                pass
            return
        await _exactly(conn, size, kept)
        if await conn.until(b"\r\n", 2, "a chunk's end") != b"":
            raise AnswerError("a chunk does not end where its size says")
