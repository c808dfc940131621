"""The lean HTTP/1.1 client against real servers on 127.0.0.1: an aiohttp
receiver, and raw TCP servers that answer byte for byte what a test scripts
(chunked bodies, 1xx answers, closed connections, garbage)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from gateway.outbox import http11
from gateway.outbox.http11 import AnswerError, Client, ConnectError, ConnectTimeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (by its Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def scripted(*answers: bytes, close: bool = False) -> tuple[Handler, list[bytes]]:
    """A server that answers each request on a connection with the next answer."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for answer in answers:
                head, _ = await read_request(reader)
                heads.append(head)
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    return handle, heads


async def post(
    client: Client, port: int, body: bytes = b"{}", headers: dict[str, str] | None = None
) -> http11.Answer:
    async with asyncio.timeout(5):
        return await client.request(
            "POST", "127.0.0.1", port, "/hook?x=1", headers or {}, body, 2.0
        )


async def exchange(
    *answers: bytes, posts: int | None = None, close: bool = False
) -> tuple[list[http11.Answer], list[bytes]]:
    """POST to a scripted server (once per answer unless told); what came back, and
    the request heads the server read."""
    handle, heads = scripted(*answers, close=close)
    async with raw_server(handle) as port:
        client = Client("gw")
        got = [await post(client, port) for _ in range(posts or len(answers))]
        client.close()
    return got, heads


async def test_keeps_one_connection_for_many_requests_to_aiohttp() -> None:
    seen: list[tuple[bytes, str | None, int]] = []

    async def hook(request: web.Request) -> web.Response:
        assert request.transport is not None
        seen.append((await request.read(), request.query.get("x"), id(request.transport)))
        return web.Response(status=202, text="queued", headers={"Retry-After": "7"})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = Client("test/1")
    try:
        for n in range(5):
            answer = await post(client, port, f'{{"n":{n}}}'.encode())
            assert (answer.status, answer.body, answer.retry_after) == (202, b"queued", "7")
    finally:
        client.close()
        await runner.cleanup()
    assert [body for body, _, _ in seen] == [f'{{"n":{n}}}'.encode() for n in range(5)]
    assert {query for _, query, _ in seen} == {"1"}
    assert len({transport for _, _, transport in seen}) == 1  # kept alive


async def test_sends_headers_once_each_with_its_own_length() -> None:
    handle, heads = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    async with raw_server(handle) as port:
        client = Client("gw/9")
        headers = {"Content-Type": "text/plain", "content-length": "999", "X-Id": "abc"}
        async with asyncio.timeout(5):
            await client.request("PUT", "127.0.0.1", port, "/a%20b", headers, b"hello", 2.0)
        client.close()
    lines = heads[0].decode().split("\r\n")
    assert lines[0] == "PUT /a%20b HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}" in lines
    assert "User-Agent: gw/9" in lines
    assert "Content-Length: 5" in lines
    assert "content-length: 999" not in lines
    assert "Content-Type: text/plain" in lines
    assert "X-Id: abc" in lines


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\x00b"], ids=["crlf", "lf", "nul"])
async def test_refuses_a_header_that_would_split_the_request(value: str) -> None:
    handle, heads = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    async with raw_server(handle) as port:
        client = Client("gw")
        with pytest.raises(ValueError, match="line break"):
            await post(client, port, headers={"X-Note": value})
        with pytest.raises(ValueError, match="bad name"):
            await client.request("POST", "127.0.0.1", port, "/", {"X Bad": "1"}, b"", 2.0)
    assert heads == []


async def test_reads_chunked_answers_and_keeps_the_connection() -> None:
    chunked = (
        b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    (first, second), heads = await exchange(chunked, b"HTTP/1.1 204 No Content\r\n\r\n")
    assert (first.status, first.body) == (500, b"Wikipedia")
    assert (second.status, second.body) == (204, b"")
    assert len(heads) == 2  # both on the one connection


async def test_skips_1xx_answers() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    (got,), _ = await exchange(answer)
    assert (got.status, got.body) == (201, b"ok")


async def test_keeps_only_the_start_of_a_long_body_and_reads_the_rest() -> None:
    body = bytes(range(256)) * 1000
    long_answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    (first, second), heads = await exchange(
        long_answer, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    )
    assert first.body == body[: http11.KEEP_BODY]
    assert second.body == b"x"
    assert len(heads) == 2


async def test_body_until_close_and_http10_end_the_connection() -> None:
    # the second POST needs a new connection: the first ended with its answer
    (first, second), heads = await exchange(
        b"HTTP/1.0 200 OK\r\n\r\nall of it", posts=2, close=True
    )
    assert first.body == second.body == b"all of it"
    assert len(heads) == 2


async def test_a_kept_connection_the_server_closed_is_retried_once_on_a_new_one() -> None:
    """The race every keep-alive client meets: the server closes an idle connection
    as the next request goes out on it."""
    connections: list[int] = []

    async def close_at_the_second(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        try:
            await read_request(r)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % len(connections))
            await w.drain()
            if len(connections) == 1:
                await read_request(r)  # and hang up without an answer
        finally:
            w.close()

    async with raw_server(close_at_the_second) as port:
        client = Client("gw")
        first = await post(client, port)
        second = await post(client, port)
        client.close()
    assert (first.body, second.body) == (b"1", b"2")
    assert connections == [0, 1]


async def test_an_answer_before_the_body_was_read_does_not_keep_the_connection() -> None:
    """A server may answer (a 413, say) as soon as it has the headers; the next request
    must not go out behind what is left of the body, on the same connection."""
    leaked = False
    read_all = asyncio.Event()  # the first connection's handler has read what came

    async def answer_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal leaked
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            if b"Content-Length: 1\r\n" in head:
                return
            await asyncio.sleep(0.3)  # the client has the answer and still holds body bytes
            tail = b""
            async with asyncio.timeout(3):
                while chunk := await reader.read(1 << 20):  # the rest of the body, then?
                    leaked = leaked or b"Content-Length: 1\r\n" in tail + chunk
                    tail = chunk[-64:]
            read_all.set()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async with raw_server(answer_at_once) as port:
        client = Client("gw")
        first = await post(client, port, b"x" * (32 * 1024 * 1024))
        second = await post(client, port, b"y")
        async with asyncio.timeout(5):
            await read_all.wait()  # to the end of the first connection
        client.close()
    assert (first.status, second.status) == (413, 413)
    assert not leaked


async def test_a_connection_closed_before_the_answer_on_a_new_connection_is_an_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
        writer.close()

    async with raw_server(hang_up) as port:
        client = Client("gw")
        with pytest.raises(AnswerError, match="closed before the answer ended"):
            await post(client, port)
        client.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        b"HTTP/1.1 2OO OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * (http11.HEAD_LIMIT + 10),
        b"\xff\xfe\x00garbage\r\n\r\n",
    ],
    ids=["ssh", "status", "header", "length", "lengths", "chunk", "chunk-end", "huge", "bytes"],
)
async def test_an_answer_that_is_not_http_is_an_error_that_says_what(answer: bytes) -> None:
    handle, _ = scripted(answer)
    async with raw_server(handle) as port:
        client = Client("gw")
        with pytest.raises(AnswerError):
            await post(client, port)
        client.close()


async def test_no_listener_is_a_connect_error() -> None:
    async with raw_server(scripted()[0]) as port:
        pass  # the port is free again
    client = Client("gw")
    with pytest.raises(ConnectError, match=r"111|refused|failed"):
        await post(client, port)


async def test_connect_timeout_is_its_own_error() -> None:
    client = Client("gw")
    with pytest.raises(ConnectTimeout, match="no connection within"):
        # a timeout of 0 expires before any connection can be made
        await client.request("POST", "127.0.0.1", 9, "/", {}, b"", 0.0)


# ---------------------------------------------------------------- send_kept: no task


async def kept(client: Client, port: int, body: bytes = b"{}") -> object:
    """What ``send_kept`` calls back with (``"no connection"``: nothing was sent)."""
    got: asyncio.Future[http11.Answer | Exception | None] = (
        asyncio.get_running_loop().create_future()
    )
    sent = client.send_kept("POST", "127.0.0.1", port, "/hook", {}, body, got.set_result)
    if sent is None:
        return "no connection"
    async with asyncio.timeout(5):
        return await got


def pieces(*answers: list[bytes], then_close: bool = False) -> tuple[Handler, list[bytes]]:
    """Each request on a connection answered with the next list of pieces, written one
    by one a moment apart; with ``then_close``, one more request read and not answered."""
    bodies: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for answer in answers:
                bodies.append((await read_request(reader))[1])
                for piece in answer:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.02)
            if then_close:
                bodies.append((await read_request(reader))[1])
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    return handle, bodies


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_send_kept_goes_over_a_kept_connection_only_and_keeps_it_again() -> None:
    handle, bodies = pieces(
        [OK], [OK], [b"HTTP/1.1 202 Accepted\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nlate"]
    )
    async with raw_server(handle) as port:
        client = Client("gw")
        assert await kept(client, port, b"never") == "no connection"  # nothing idle yet
        assert (await post(client, port, b"1")).status == 200
        first = await kept(client, port, b"2")
        assert isinstance(first, http11.Answer)
        assert (first.status, first.body) == (200, b"ok")
        second = await kept(client, port, b"3")  # the same connection, kept again
        assert isinstance(second, http11.Answer)
        assert (second.status, second.body, second.retry_after) == (202, b"late", "3")
        client.close()
    assert bodies == [b"1", b"2", b"3"]


async def test_send_kept_reads_answers_in_pieces_chunked_and_after_1xx() -> None:
    handle, _ = pieces(
        [OK],
        [b"HTTP/1.1 200 OK\r\nContent-", b"Length: 5\r\n\r\nhe", b"llo"],
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", b"0\r\n\r\n"],
        [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"],
        [OK],
    )
    async with raw_server(handle) as port:
        client = Client("gw")
        await post(client, port)
        got = [await kept(client, port) for _ in range(4)]
        client.close()
    assert [(a.status, a.body) for a in got if isinstance(a, http11.Answer)] == [
        (200, b"hello"),
        (200, b"abc"),
        (201, b""),
        (200, b"ok"),
    ]


async def test_send_kept_says_none_when_the_server_closed_before_answering() -> None:
    handle, bodies = pieces([OK], then_close=True)
    async with raw_server(handle) as port:
        client = Client("gw")
        await post(client, port)
        assert await kept(client, port, b"again") is None  # the caller sends it once more
        client.close()
    assert bodies == [b"{}", b"again"]


async def test_send_kept_reports_a_bad_answer_and_an_abort_calls_nothing_back() -> None:
    handle, _ = pieces([OK], [b"HTTP/2 200 OK\r\n\r\n"])
    async with raw_server(handle) as port:
        client = Client("gw")
        await post(client, port)
        bad = await kept(client, port)
        assert isinstance(bad, AnswerError)
        client.close()
    called: list[object] = []
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await read_request(reader)  # ... and never answers it
        await reader.read()  # until the client closes
        closed.set()

    async with raw_server(silent) as port:
        client = Client("gw")
        await post(client, port)
        sent = client.send_kept("POST", "127.0.0.1", port, "/", {}, b"{}", called.append)
        assert sent is not None
        await asyncio.sleep(0.1)
        sent.abort()
        await asyncio.wait_for(closed.wait(), 5)
        await asyncio.sleep(0.05)
        client.close()
    assert called == []
