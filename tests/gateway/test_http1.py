"""The upstream HTTP/1.1 transport against a scripted server on 127.0.0.1 that misbehaves on demand."""

from __future__ import annotations

import asyncio
import gc
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import trustme

from tokenboard.gateway.http1 import READ_BUFFER_HIGH, Http1Transport, _Connection, body_exhausted, raw_chunks

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Scripted"], Awaitable[bool]]


@dataclass
class Scripted:
    """A server whose answer to each request is a coroutine; returning False closes the connection."""

    reply: Reply
    connections: int = 0
    requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = field(default_factory=list)
    open_now: int = 0
    most_open: int = 0


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b": ")
            headers[name.lower()] = value
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return lines[0], headers, body


@asynccontextmanager
async def scripted(reply: Reply, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[str, Scripted]]:
    state = Scripted(reply)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        state.open_now += 1
        state.most_open = max(state.most_open, state.open_now)
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    break
                state.requests.append(request)
                if not await state.reply(reader, writer, state):
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            state.open_now -= 1
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://{'localhost' if tls else '127.0.0.1'}:{port}", state
    finally:
        server.close()


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
    writer.write(ok(b'{"n":%d}' % len(state.requests)))
    await writer.drain()
    return True


def client(base: str, transport: Http1Transport | None = None, **timeouts: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base,
        transport=transport or Http1Transport(),
        timeout=httpx.Timeout(timeouts.get("read", 5.0), pool=timeouts.get("pool", 5.0)),
    )


async def test_keeps_one_connection_for_sequential_requests_and_sends_the_request_whole() -> None:
    async with scripted(answer_ok) as (base, state), client(base) as http:
        for n in range(1, 21):
            response = await http.post("/v1/chat", content=b'{"q":1}', headers={"authorization": "Bearer sk"})
            assert response.status_code == 200
            assert response.json() == {"n": n}
            assert response.headers["content-type"] == "application/json"
        assert state.connections == 1
        line, headers, body = state.requests[0]
        assert line == b"POST /v1/chat HTTP/1.1"
        assert headers[b"authorization"] == b"Bearer sk"
        assert headers[b"host"] == base.removeprefix("http://").encode()
        assert body == b'{"q":1}'


async def test_concurrent_requests_never_open_more_than_the_limit() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
        await asyncio.sleep(0.05)
        return await answer_ok(reader, writer, state)

    async with scripted(slow) as (base, state), client(base, Http1Transport(max_connections=3)) as http:
        responses = await asyncio.gather(*(http.post("/x", content=b"{}") for _ in range(12)))
        assert [r.status_code for r in responses] == [200] * 12
        assert state.most_open <= 3
        assert state.connections == 3


async def test_a_request_waits_for_a_connection_up_to_the_pool_timeout() -> None:
    release = asyncio.Event()

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
        await release.wait()
        return await answer_ok(reader, writer, state)

    async with scripted(held) as (base, _), client(base, Http1Transport(max_connections=1), pool=0.2) as http:
        first = asyncio.ensure_future(http.post("/x", content=b"{}"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(httpx.PoolTimeout):
            await http.post("/x", content=b"{}")
        assert 0.15 < time.monotonic() - started < 2
        release.set()
        assert (await first).status_code == 200
        # the slot came back: the next request is served
        assert (await http.post("/x", content=b"{}")).status_code == 200


async def test_an_upstream_that_does_not_answer_times_out_as_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
        await asyncio.sleep(10)
        return False

    async with scripted(silent) as (base, _), client(base, read=0.2) as http:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/x", content=b"{}")
        assert time.monotonic() - started < 2


async def test_a_closed_port_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with client(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(httpx.ConnectError):
            await http.post("/x", content=b"{}")


async def test_chunked_bodies_arrive_as_they_are_sent() -> None:
    sent_last = asyncio.Event()

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for n in range(5):
            piece = b"data: %d\n\n" % n
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        sent_last.set()
        await writer.drain()
        return True

    async with scripted(chunked) as (base, state), client(base) as http:
        for _ in range(2):
            async with http.stream("POST", "/x", content=b"{}") as response:
                lines = []
                async for line in response.aiter_lines():
                    if line:
                        lines.append(line)
                        if len(lines) == 1:
                            assert not sent_last.is_set()  # streamed, not buffered to the end
                assert lines == [f"data: {n}" for n in range(5)]
            sent_last.clear()
        assert state.connections == 1  # the chunked response ended cleanly: the connection was reused


async def test_a_body_is_exhausted_once_its_last_chunk_came_with_the_end() -> None:
    more = asyncio.Event()

    async def two_parts(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await more.wait()
        writer.write(b"4\r\nlast\r\n0\r\n\r\n")  # the last piece and the end in one write
        await writer.drain()
        return True

    transport = Http1Transport()
    async with scripted(two_parts) as (base, _), client(base, transport) as http:
        # from the transport itself, as the gateway's upstreams call it (a client would wrap the body)
        response = await transport.handle_async_request(http.build_request("POST", "/x", content=b"{}"))
        chunks = raw_chunks(response)
        assert chunks is not None
        seen = []
        async for chunk in chunks:
            seen.append((chunk, body_exhausted(response)))
            more.set()
        await response.aclose()
    assert seen == [(b"first", False), (b"last", True)]
    other = httpx.Response(200, stream=httpx.ByteStream(b"x"))  # another transport's response
    assert raw_chunks(other) is None and not body_exhausted(other)


async def test_a_body_delimited_by_the_connection_end_is_read_whole_and_not_reused() -> None:
    async def until_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n")
        writer.write(b'{"whole":')
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"true}")
        await writer.drain()
        return False

    async with scripted(until_close) as (base, state), client(base) as http:
        for _ in range(3):
            assert (await http.post("/x", content=b"{}")).json() == {"whole": True}
        assert state.connections == 3


async def test_a_body_cut_short_is_a_protocol_error() -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        await writer.drain()
        return False

    async with scripted(truncated) as (base, _), client(base) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/x", content=b"{}")


async def test_malformed_and_oversized_responses_are_protocol_errors() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
        if len(state.requests) == 1:
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\n" + b"x-big: " + b"a" * (70 * 1024) + b"\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)
        return False

    async with scripted(garbage) as (base, _), client(base) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="malformed"):
            await http.post("/x", content=b"{}")
        with pytest.raises(httpx.RemoteProtocolError, match="malformed"):
            await http.post("/x", content=b"{}")


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> bool:
        await answer_ok(reader, writer, state)
        return False  # keep-alive promised, but the server closes

    transport = Http1Transport()
    async with scripted(answer_then_close) as (base, state), client(base, transport) as http:
        for _ in range(3):
            assert (await http.post("/x", content=b"{}")).status_code == 200
            await asyncio.sleep(0.05)  # the loop sees the close while the connection is idle
        assert state.connections == 3
        pool = next(iter(transport._pools.values()))
        assert pool.count == 0 and not pool.idle


async def test_a_kept_alive_connection_dropped_as_the_request_goes_out_is_retried_once() -> None:
    async def drop_second(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> bool:
        if len(state.requests) == 2:
            return False  # read the request, answer nothing, close: the keep-alive race
        return await answer_ok(reader, writer, state)

    async with scripted(drop_second) as (base, state), client(base) as http:
        assert (await http.post("/x", content=b"{}")).status_code == 200
        assert (await http.post("/x", content=b"{}")).json() == {"n": 3}
        assert state.connections == 2


async def test_a_new_connection_closed_without_an_answer_is_not_retried() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
        return False

    async with scripted(never) as (base, state), client(base) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await http.post("/x", content=b"{}")
        assert len(state.requests) == 1


async def test_idle_connections_expire() -> None:
    async with scripted(answer_ok) as (base, state), client(base, Http1Transport(idle_expiry=0.05)) as http:
        await http.post("/x", content=b"{}")
        await asyncio.sleep(0.1)
        await http.post("/x", content=b"{}")
        assert state.connections == 2


async def test_leaving_a_body_unread_closes_that_connection_and_frees_its_slot() -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
        writer.write(ok(b"x" * 1_000_000))
        await writer.drain()
        return True

    transport = Http1Transport(max_connections=1)
    async with scripted(big) as (base, state), client(base, transport) as http:
        for _ in range(3):
            async with http.stream("POST", "/x", content=b"{}") as response:
                assert response.status_code == 200
        assert state.connections == 3
        pool = next(iter(transport._pools.values()))
        assert pool.count == 0


async def test_an_unread_stream_is_buffered_only_up_to_the_high_mark() -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (64 * 1024 * 1024))
        for _ in range(1024):
            writer.write(b"y" * 65536)
            await writer.drain()
        return True

    transport = Http1Transport()
    async with scripted(flood) as (base, _), client(base, transport) as http:
        async with http.stream("POST", "/x", content=b"{}") as response:
            await asyncio.sleep(0.5)  # the server writes as fast as it can; nobody reads
            pool = next(iter(transport._pools.values()))
            buffered = _active(pool).buffered
            assert buffered <= READ_BUFFER_HIGH + 256 * 1024
            total = 0
            async for chunk in response.aiter_raw():
                total += len(chunk)
            assert total == 64 * 1024 * 1024


def _active(pool: object) -> _Connection:
    """The one connection in use: neither idle nor closed (found through the garbage collector's view)."""
    found = [o for o in gc.get_objects() if isinstance(o, _Connection) and o.pool is pool and o.active]
    assert len(found) == 1
    return found[0]


async def test_an_informational_response_is_skipped() -> None:
    async def continue_first(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: Scripted
    ) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return await answer_ok(reader, writer, state)

    async with scripted(continue_first) as (base, _), client(base) as http:
        response = await http.post("/x", content=b"{}")
        assert response.status_code == 200 and response.json() == {"n": 1}


async def test_a_header_with_a_line_break_is_never_sent() -> None:
    async with scripted(answer_ok) as (base, state), client(base) as http:
        with pytest.raises(httpx.LocalProtocolError):
            await http.post("/x", content=b"{}", headers={"x-evil": "a\r\nx-api-key: stolen"})
        assert state.requests == []


async def test_tls_with_the_configured_trust_and_refused_without_it() -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with scripted(answer_ok, tls=server_context) as (base, state):
        async with client(base, Http1Transport(ssl_context=trusting)) as http:
            assert (await http.post("/x", content=b"{}")).json() == {"n": 1}
            assert (await http.post("/x", content=b"{}")).json() == {"n": 2}
        async with client(base) as http:  # the default trust store does not know this authority
            with pytest.raises(httpx.ConnectError):
                await http.post("/x", content=b"{}")
        assert state.connections >= 1


async def test_a_closed_transport_refuses_new_requests() -> None:
    async with scripted(answer_ok) as (base, _):
        transport = Http1Transport()
        http = client(base, transport)
        assert (await http.post("/x", content=b"{}")).status_code == 200
        await http.aclose()
        with pytest.raises(RuntimeError):  # httpx refuses a closed client before the transport is asked
            await http.post("/x", content=b"{}")
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(httpx.Request("POST", f"{base}/x", content=b"{}"))


async def test_a_prepared_request_sends_what_the_request_would() -> None:
    from tokenboard.gateway.http1 import Prepared

    async with scripted(answer_ok) as (base, state), client(base) as http:
        template = http.build_request("POST", "/v1/chat", headers={"authorization": "Bearer sk"})
        del template.headers["content-length"]
        transport = http._transport
        assert isinstance(transport, Http1Transport)
        prepared = Prepared(template)
        for n, body in enumerate((b'{"a":1}', b'{"b":22}'), start=1):
            response = await transport.send_prepared(prepared, body)
            assert response.status_code == 200 and (await response.aread()) == b'{"n":%d}' % n
        assert (
            await http.post("/v1/chat", content=b'{"a":1}', headers={"authorization": "Bearer sk"})
        ).json()
        (line1, headers1, body1), (_, headers2, body2), (line3, headers3, body3) = state.requests
        assert line1 == line3 == b"POST /v1/chat HTTP/1.1"
        assert body1 == body3 == b'{"a":1}' and body2 == b'{"b":22}'
        assert headers2[b"content-length"] == b"8"
        assert {k: v for k, v in headers1.items() if k != b"user-agent"} == {
            k: v for k, v in headers3.items() if k != b"user-agent"
        }
        assert state.connections == 1
        evil = http.build_request("POST", "/v1/chat", headers={"x-evil": "a\r\nx-api-key: stolen"})
        with pytest.raises(httpx.LocalProtocolError):
            Prepared(evil)
