"""Is the configured Redis there? Checked once at startup, so that a wrong ``TOKENBOARD_REDIS_URL`` stops the
server with one clear message (naming the address, never the password) instead of a retry loop of tracebacks.

``tokenboard serve`` checks the URL before it starts uvicorn; the app checks again when its listeners start
(:meth:`tokenboard.kit.cache_bus.CacheBus.start`, :meth:`tokenboard.kit.live.LiveHub.start`), which covers
a server started some other way.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlencode, urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection

# A Redis that does not answer a PING within this long is as good as absent for startup.
STARTUP_TIMEOUT = 5.0
_SECRET_QUERY_KEYS = frozenset({"password", "username"})


class RedisUnavailable(RuntimeError):
    """Redis is configured but cannot be reached; the message says where and what to do."""


def redacted_url(url: str) -> str:
    """``url`` without its password (``redis://user:***@host:6379/0``), for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        # redis://secret@host: a lone userinfo may well be a password, so it is hidden too.
        netloc = f"{user}:***@{hostport}" if colon and user else f"***@{hostport}"
    query = urlencode(
        [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in parse_qsl(parts.query)], safe="*"
    )
    # Not urlunsplit: it writes unix:///path as unix:/path.
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def describe(redis: Redis) -> str:
    """Where a client connects, as a URL without credentials: ``redis://127.0.0.1:6379/0``."""
    pool = redis.connection_pool
    kwargs = pool.connection_kwargs
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}"
    scheme = "rediss" if issubclass(pool.connection_class, SSLConnection) else "redis"
    user = f"{kwargs['username']}@" if kwargs.get("username") else ""
    return f"{scheme}://{user}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def unavailable(where: str, reason: str) -> RedisUnavailable:
    return RedisUnavailable(
        f"Cannot reach Redis at {where} (TOKENBOARD_REDIS_URL): {reason}. Start Redis there or correct "
        "TOKENBOARD_REDIS_URL; unset it to run a single instance without Redis."
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer"
    return (str(exc) or type(exc).__name__).rstrip(".")


async def ensure_reachable(redis: Redis, *, where: str | None = None) -> None:
    """Raise :class:`RedisUnavailable` unless ``redis`` answers a PING within :data:`STARTUP_TIMEOUT`."""
    try:
        await asyncio.wait_for(redis.ping(), STARTUP_TIMEOUT)
    except Exception as exc:
        raise unavailable(where or describe(redis), _reason(exc)) from None


async def check_url(url: str) -> None:
    """Raise :class:`RedisUnavailable` unless the Redis at ``url`` answers (the check ``serve`` makes)."""
    try:
        redis = Redis.from_url(url)
    except ValueError as exc:
        raise RedisUnavailable(
            f"TOKENBOARD_REDIS_URL {redacted_url(url)} is not a Redis URL ({exc}); use one such as "
            "redis://host:6379/0, or unset it to run a single instance without Redis."
        ) from exc
    try:
        await ensure_reachable(redis, where=redacted_url(url))
    finally:
        await redis.aclose()
