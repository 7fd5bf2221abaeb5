"""The gateway's upstream connections: a lean HTTP/1.1 transport for httpx.

httpcore's pool, under httpx, walks every pooled connection for each request and asks each idle one, with a
``poll`` system call, whether the server has closed it; under load that bookkeeping took a fifth of the
gateway's CPU (decision 0002). Here a connection is an asyncio protocol: the event loop tells it when the
server closes, so taking an idle connection is O(1) (a deque, most recently used first) and nothing is
polled. Responses are parsed by llhttp through ``httptools``, the parser uvicorn serves with.

What stays httpx's: the request and response types, streaming bodies, and the exceptions the gateway maps to
502/504 (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``PoolTimeout``, ``RemoteProtocolError``).
The client keeps its fixed base URL, so operator credentials still only reach the configured host. What this
transport does not do, because the gateway needs none of it: HTTP/2, proxies, streamed request bodies.

Limits: at most ``max_connections`` per origin (requests beyond wait up to the pool timeout), at most
``max_idle`` kept open between requests, none kept longer than ``idle_expiry`` seconds (below the 5 s
keep-alive of common servers, so a connection is not reused just as the server drops it). An unread body
buffers at most ``READ_BUFFER_HIGH`` bytes before the socket stops being read, and response headers are
capped at ``MAX_HEADER_BYTES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, cast

import certifi
import httptools
import httpx

READ_BUFFER_HIGH = 256 * 1024
READ_BUFFER_LOW = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_PORTS = {b"http": 80, b"https": 443}


def _expire(waiter: asyncio.Future[Any], error: type[httpx.TimeoutException]) -> None:
    if not waiter.done():
        waiter.set_exception(error("The server did not answer in time."))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one request at a time; fed by the event loop, read by the request's task."""

    def __init__(self, pool: _OriginPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False  # the socket is gone (either side)
        self.slot_freed = False  # the pool no longer counts it
        self.served = 0  # requests answered on it
        self.idle_since = 0.0
        self.active = False
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.headers_done = False
        self.informational = False
        self.framed = False  # the body's end is known from its length or chunking
        self.complete = False
        self.keep_alive = False
        self.received_any = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.error: httpx.TransportError | None = None
        self.waiter: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        if not self.active or self.complete:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"The server sent a malformed response ({exc})."))

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.active and not self.complete and self.error is None:
            if self.headers_done and not self.framed:
                self.complete = True  # a body delimited by the end of the connection
                self.keep_alive = False
            elif self.headers_done:
                self.error = httpx.RemoteProtocolError(
                    "The server closed the connection before the response was complete."
                )
            else:
                self.error = httpx.RemoteProtocolError(
                    "The server closed the connection without sending a response."
                )
        self._wake()
        if not self.active:
            self.pool.forget(self)

    # ------------------------------------------------------------------ httptools callbacks

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise ValueError("response headers too large")
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 1xx: the real response follows
            self.informational = True
            self.headers = []
            self.reason = b""
            self.header_bytes = 0
            return
        self.status = status
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length" or (
                lowered == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                self.framed = True
        if status in (204, 304):
            self.framed = True
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > READ_BUFFER_HIGH and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # ------------------------------------------------------------------ the request's side

    def _fail(self, error: httpx.TransportError) -> None:
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, within: float | None) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiter = waiter
        handle = loop.call_later(within, _expire, waiter, httpx.ReadTimeout) if within is not None else None
        try:
            await waiter
        finally:
            self.waiter = None
            if handle is not None:
                handle.cancel()

    def start(self, data: bytes) -> None:
        self.active = True
        if self.transport is None or self.transport.is_closing():
            self.closed = True  # the server left while the connection waited: response_head says so
            return
        self.transport.write(data)

    async def response_head(self, within: float | None) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            if self.closed:
                raise httpx.RemoteProtocolError(
                    "The server closed the connection without sending a response."
                )
            await self._wait(within)

    async def body(self, within: float | None) -> AsyncIterator[bytes]:
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.paused and self.buffered < READ_BUFFER_LOW and self.transport is not None:
                    self.paused = False
                    self.transport.resume_reading()
                yield chunk
            elif self.error is not None:
                raise self.error
            elif self.complete:
                return
            else:
                await self._wait(within)

    @property
    def reusable(self) -> bool:
        return (
            self.complete and self.keep_alive and not self.closed and self.error is None and not self.chunks
        )

    def reset(self) -> None:
        self.served += 1
        self.active = False
        self.status = 0
        self.reason = b""
        self.headers = []
        self.header_bytes = 0
        self.headers_done = False
        self.framed = False
        self.complete = False
        self.keep_alive = False
        self.received_any = False
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.closed = True
        self.pool.free_slot(self)


class _OriginPool:
    """The connections to one scheme, host and port."""

    def __init__(self, owner: Http1Transport, scheme: bytes, host: str, port: int) -> None:
        self.owner = owner
        self.scheme = scheme
        self.host = host
        self.port = port
        self.idle: deque[_Connection] = deque()
        self.count = 0  # connections open or opening
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()

    async def acquire(self, connect_timeout: float | None, pool_timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        now = loop.time()
        idle = self.idle
        while idle:
            connection = idle.pop()
            if connection.closed or now - connection.idle_since > self.owner.idle_expiry:
                connection.close()
                continue
            return connection
        if self.count >= self.owner.max_connections:
            handed = await self._wait_turn(loop, pool_timeout)
            if handed is not None:
                return handed
            # a slot was handed over: it is already counted for us
        else:
            self.count += 1
        try:
            return await self._connect(loop, connect_timeout)
        except BaseException:
            self.count -= 1
            self._hand_over_slot()
            raise

    async def _wait_turn(self, loop: asyncio.AbstractEventLoop, within: float | None) -> _Connection | None:
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self.waiters.append(waiter)
        handle = loop.call_later(within, _expire, waiter, httpx.PoolTimeout) if within is not None else None
        try:
            return await waiter
        except BaseException:
            # a connection or slot handed over just before the cancellation is not lost
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is not None:
                    self.release(handed)
                else:
                    self.count -= 1
                    self._hand_over_slot()
            raise
        finally:
            if handle is not None:
                handle.cancel()

    async def _connect(self, loop: asyncio.AbstractEventLoop, within: float | None) -> _Connection:
        tls = self.owner.ssl_context if self.scheme == b"https" else None
        try:
            async with asyncio.timeout(within):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=tls,
                    server_hostname=self.host if tls is not None else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"Connecting to {self.host}:{self.port} timed out.") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"Could not connect to {self.host}:{self.port}: {exc}") from exc
        assert isinstance(protocol, _Connection)
        return protocol

    def release(self, connection: _Connection) -> None:
        """Back to the pool if it can serve another request, else closed."""
        if connection.reusable and not self.owner.closed:
            connection.reset()
            while self.waiters:
                waiter = self.waiters.popleft()
                if not waiter.done():
                    waiter.set_result(connection)
                    return
            if len(self.idle) < self.owner.max_idle:
                connection.idle_since = asyncio.get_running_loop().time()
                self.idle.append(connection)
                return
        connection.close()

    def free_slot(self, connection: _Connection) -> None:
        if connection.slot_freed:
            return
        connection.slot_freed = True
        self.count -= 1
        self._hand_over_slot()

    def _hand_over_slot(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.count += 1
                waiter.set_result(None)
                return

    def forget(self, connection: _Connection) -> None:
        """An idle connection the server closed: out of the idle deque (rare, so a linear remove is fine)."""
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)
        self.free_slot(connection)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class _Body(httpx.AsyncByteStream):
    def __init__(self, connection: _Connection, pool: _OriginPool, timeout: float | None) -> None:
        self.connection = connection
        self.pool = pool
        self.timeout = timeout
        self.released = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.connection.body(self.timeout)

    @property
    def exhausted(self) -> bool:
        """Every byte of the body has been handed out and the response is complete: the next read ends."""
        connection = self.connection
        return connection.complete and not connection.chunks and connection.error is None

    async def aclose(self) -> None:
        if not self.released:
            self.released = True
            self.pool.release(self.connection)


def _head(request: httpx.Request, *, with_length: bool = True) -> bytes:
    """The request line and headers; without ``content-length`` and the blank line when ``with_length`` is
    false (a prepared head, completed per body)."""
    lines = [request.method.encode(), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name or b":" in name:
            raise httpx.LocalProtocolError("A request header contains a line break.")
        if not with_length and name.lower() == b"content-length":
            continue
        lines += (name, b": ", value, b"\r\n")
    if with_length:
        lines.append(b"\r\n")
    return b"".join(lines)


class Prepared:
    """A request's method, URL, headers and timeouts encoded once; each send only adds its body."""

    __slots__ = ("head", "timeouts", "url")

    def __init__(self, template: httpx.Request) -> None:
        if "transfer-encoding" in template.headers:
            raise httpx.LocalProtocolError("Streamed request bodies are not supported by this transport.")
        self.url = template.url
        self.head = _head(template, with_length=False)
        self.timeouts: dict[str, Any] = template.extensions.get("timeout", {})


class Http1Transport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        max_connections: int = 200,
        max_idle: int = 100,
        idle_expiry: float = 4.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.max_idle = max_idle
        self.idle_expiry = idle_expiry
        self.ssl_context = ssl_context or ssl.create_default_context(cafile=certifi.where())
        self.closed = False
        self._pools: dict[tuple[bytes, bytes, int | None], _OriginPool] = {}

    def _pool(self, url: httpx.URL) -> _OriginPool:
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(key)
        if pool is None:
            if url.raw_scheme not in DEFAULT_PORTS:
                raise httpx.UnsupportedProtocol(
                    f"Only http and https upstreams are supported, not {url.scheme!r}."
                )
            port = url.port or DEFAULT_PORTS[url.raw_scheme]
            pool = self._pools[key] = _OriginPool(self, url.raw_scheme, url.host, port)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "transfer-encoding" in request.headers:
            raise httpx.LocalProtocolError("Streamed request bodies are not supported by this transport.")
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        data = _head(request) + await request.aread()
        return await self._exchange(request.url, data, timeouts)

    async def send_prepared(self, prepared: Prepared, body: bytes) -> httpx.Response:
        """Send ``body`` with a prepared head: the gateway's path, without building an ``httpx.Request``."""
        data = b"%scontent-length: %d\r\n\r\n%s" % (prepared.head, len(body), body)
        return await self._exchange(prepared.url, data, prepared.timeouts)

    async def _exchange(self, url: httpx.URL, data: bytes, timeouts: dict[str, Any]) -> httpx.Response:
        if self.closed:
            raise httpx.ConnectError("The upstream client is closed.")
        read_timeout = timeouts.get("read")
        pool = self._pool(url)
        for attempt in (1, 2):
            connection = await pool.acquire(timeouts.get("connect"), timeouts.get("pool"))
            reused = connection.served > 0
            connection.start(data)
            try:
                await connection.response_head(read_timeout)
            except httpx.RemoteProtocolError:
                connection.close()
                # The server dropped a kept-alive connection as this request went out (it answered nothing):
                # the request never reached it, so it goes once more on a new connection.
                if reused and not connection.received_any and attempt == 1:
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            return httpx.Response(
                connection.status,
                headers=connection.headers,
                stream=_Body(connection, pool, read_timeout),
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": connection.reason},
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        self.closed = True
        for pool in self._pools.values():
            pool.close()


def raw_chunks(response: httpx.Response) -> AsyncIterator[bytes] | None:
    """The body of a response of this transport as it arrives, without httpx's iterator around it (its
    bookkeeping and chunker, one more generator for every chunk of a stream); None for other transports."""
    stream = response.stream
    return stream.connection.body(stream.timeout) if isinstance(stream, _Body) else None


def body_exhausted(response: httpx.Response) -> bool:
    """Whether a response of this transport has nothing more to read (False for other transports' responses:
    they only tell by ending their iteration)."""
    stream = response.stream
    return isinstance(stream, _Body) and stream.exhausted
