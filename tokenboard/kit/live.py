"""Live updates: tell open pages of an organization that something changed, on every app instance.

:class:`LiveHub` is an in-process publish/subscribe hub keyed by organization id. ``publish`` never blocks:
bursts for one organization are coalesced (at most one message per ``min_interval`` per org and event), and
each subscriber has a bounded queue that drops the oldest message when a slow client falls behind, so memory
never grows with traffic. With Redis configured, every message published here is also published on one
channel, and every instance delivers what the others publish to its own subscribers.

The usage writer calls :meth:`LiveHub.notify_usage` after each committed batch; the SSE endpoint
(``tokenboard/live/endpoints.py``, through ``kit/sse.py``) streams an organization's messages to its members.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any

from redis.asyncio import Redis

from tokenboard.kit.db import utcnow
from tokenboard.kit.redis_check import STARTUP_TIMEOUT, describe, ensure_reachable, unavailable

log = logging.getLogger("tokenboard.live")
CHANNEL = "tokenboard:live"
USAGE = "usage"

Payload = dict[str, Any]
Merge = Callable[[Payload, Payload], Payload]


def add_usage(pending: Payload, new: Payload) -> Payload:
    """Coalesce two usage messages into one: counts add up, the newest time wins."""
    return {
        "at": new.get("at", pending.get("at")),
        "requests": int(pending.get("requests", 0)) + int(new.get("requests", 0)),
        "cost_nanousd": int(pending.get("cost_nanousd", 0)) + int(new.get("cost_nanousd", 0)),
    }


# How bursts of each event coalesce; an event not listed keeps its latest payload.
MERGES: dict[str, Merge] = {USAGE: add_usage}


@dataclass(frozen=True, slots=True)
class LiveMessage:
    event: str
    data: Payload


class Subscription:
    """One subscriber's bounded queue. An async iterator of :class:`LiveMessage`; ends when closed."""

    def __init__(self, hub: LiveHub, organization_id: uuid.UUID, maxsize: int) -> None:
        self.organization_id = organization_id
        self.dropped = 0
        self._hub = hub
        self._messages: deque[LiveMessage] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> int:
        return len(self._messages)

    def put(self, message: LiveMessage) -> None:
        if self._closed:
            return
        if len(self._messages) == self._messages.maxlen:
            self.dropped += 1  # the deque drops the oldest: a slow client skips to the latest
        self._messages.append(message)
        self._ready.set()

    async def next(self, within: float | None = None) -> LiveMessage | None:
        """The next message; ``None`` when ``within`` seconds pass first or the subscription is closed."""
        if not self._messages and not self._closed:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), within)
        if self._closed or not self._messages:
            return None
        return self._messages.popleft()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._messages.clear()
            self._hub._forget(self)
            self._ready.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> LiveMessage:
        message = await self.next()
        if message is None:
            raise StopAsyncIteration
        return message

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveHub:
    """Publish/subscribe by organization, coalesced, bounded, and shared across instances through Redis."""

    def __init__(
        self,
        redis: Redis | None = None,
        *,
        min_interval: float = 0.25,
        queue_size: int = 16,
        channel: str = CHANNEL,
    ) -> None:
        self.instance_id = uuid.uuid4().hex
        self._redis = redis
        self._min_interval = min_interval
        self._queue_size = queue_size
        self._channel = channel
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        # Coalescing, per (org, event, came from another instance): what waits, when it last went out.
        self._pending: dict[tuple[uuid.UUID, str, bool], Payload] = {}
        self._timers: dict[tuple[uuid.UUID, str, bool], asyncio.TimerHandle] = {}
        self._last_sent: dict[tuple[uuid.UUID, str, bool], float] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._closing = False

    # -- publishing ---------------------------------------------------------------------------------------

    def notify_usage(
        self, organization_id: uuid.UUID, *, requests: int, cost_nanousd: int, at: datetime | None = None
    ) -> None:
        """Tell the organization's open pages that ``requests`` events costing ``cost_nanousd`` were written.

        Call it after the batch committed, from the event loop. It returns at once and never raises.
        """
        payload = {"at": (at or utcnow()).isoformat(), "requests": requests, "cost_nanousd": cost_nanousd}
        self.publish(organization_id, payload, event=USAGE)

    def publish(self, organization_id: uuid.UUID, payload: Mapping[str, Any], *, event: str = USAGE) -> None:
        """Queue ``payload`` for the organization's subscribers here and on every other instance."""
        try:
            self._enqueue((organization_id, event, False), dict(payload))
        except Exception:  # a live update is a courtesy: it must never fail the caller's committed work
            log.exception("could not publish a live %s message", event)

    def _enqueue(self, key: tuple[uuid.UUID, str, bool], payload: Payload) -> None:
        if self._closing:
            return
        pending = self._pending.get(key)
        if pending is not None:
            merge = MERGES.get(key[1])
            self._pending[key] = merge(pending, payload) if merge else payload
            return
        self._pending[key] = payload
        loop = asyncio.get_running_loop()
        last = self._last_sent.get(key)
        delay = 0.0 if last is None else max(0.0, last + self._min_interval - loop.time())
        self._timers[key] = loop.call_later(delay, self._flush, key)

    def _flush(self, key: tuple[uuid.UUID, str, bool]) -> None:
        self._timers.pop(key, None)
        payload = self._pending.pop(key, None)
        if payload is None:
            return
        now = asyncio.get_running_loop().time()
        self._last_sent[key] = now
        if len(self._last_sent) > 4096:  # forget orgs that have been quiet longer than the interval
            cutoff = now - self._min_interval
            self._last_sent = {k: t for k, t in self._last_sent.items() if t > cutoff}
        organization_id, event, remote = key
        self._deliver(organization_id, LiveMessage(event, payload))
        if not remote and self._redis is not None:
            task = asyncio.get_running_loop().create_task(self._share(organization_id, event, payload))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def _deliver(self, organization_id: uuid.UUID, message: LiveMessage) -> None:
        for subscription in list(self._subscribers.get(organization_id, ())):
            subscription.put(message)

    async def _share(self, organization_id: uuid.UUID, event: str, payload: Payload) -> None:
        assert self._redis is not None
        body = json.dumps(
            {"origin": self.instance_id, "org": str(organization_id), "event": event, "data": payload}
        )
        try:
            await self._redis.publish(self._channel, body)
        except Exception:  # losing Redis costs other instances a refresh, never the caller its work
            log.exception("could not share a live %s message through Redis", event)

    # -- subscribing --------------------------------------------------------------------------------------

    def subscribe(self, organization_id: uuid.UUID) -> Subscription:
        """A new subscription to the organization's messages, registered at once; close it when done."""
        subscription = Subscription(self, organization_id, self._queue_size)
        if self._closing:
            subscription.close()
        else:
            self._subscribers.setdefault(organization_id, set()).add(subscription)
        return subscription

    def subscriber_count(self, organization_id: uuid.UUID | None = None) -> int:
        if organization_id is not None:
            return len(self._subscribers.get(organization_id, ()))
        return sum(len(subs) for subs in self._subscribers.values())

    def _forget(self, subscription: Subscription) -> None:
        subs = self._subscribers.get(subscription.organization_id)
        if subs is not None:
            subs.discard(subscription)
            if not subs:
                del self._subscribers[subscription.organization_id]

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen to the other instances (when Redis is configured).

        Raises :class:`~tokenboard.kit.redis_check.RedisUnavailable`, naming the address, when Redis does
        not answer.
        """
        if self._redis is None or self._listener is not None:
            return
        self._closing = False
        await ensure_reachable(self._redis)
        self._listener = asyncio.get_running_loop().create_task(self._listen())
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=STARTUP_TIMEOUT)
        except TimeoutError:
            await self.stop()
            raise unavailable(describe(self._redis), "no subscription to the live channel") from None

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._subscribed.set()
                    async for item in pubsub.listen():
                        if item.get("type") == "message":
                            self._receive(item["data"])
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: local delivery goes on, retry the listener
                log.exception("live update listener lost Redis; retrying")
                await asyncio.sleep(1)

    def _receive(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            if message["origin"] == self.instance_id:
                return  # already delivered here when it was published
            organization_id = uuid.UUID(message["org"])
            event, payload = str(message["event"]), dict(message["data"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed live message: %r", data[:200])
            return
        if organization_id in self._subscribers:
            self._enqueue((organization_id, event, True), payload)

    def close_streams(self) -> None:
        """End every open subscription (and refuse new ones): the server is shutting down."""
        self._closing = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._pending.clear()
        for subs in list(self._subscribers.values()):
            for subscription in list(subs):
                subscription.close()

    async def drain(self) -> None:
        """Send every message still waiting to be coalesced now, and wait until Redis has them.

        For a short-lived publisher (``tokenboard import``) about to stop: :meth:`stop` drops what waits.
        """
        for key, timer in list(self._timers.items()):
            timer.cancel()
            self._flush(key)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def stop(self) -> None:
        self.close_streams()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def close_streams_on_exit_signals(hub: LiveHub) -> Callable[[], None]:
    """Chain the server's SIGTERM/SIGINT handlers so open event streams end before it waits for them.

    Uvicorn waits for every response to finish before it runs the app's shutdown, and an event stream never
    finishes by itself: without this, SIGTERM would hang on an open page. Returns a function that restores
    the previous handlers. Does nothing outside the main thread (signals can only be handled there).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(hub.close_streams)
        chained = previous.get(signal.Signals(signum))
        if callable(chained):
            chained(signum, frame)

    for sig in (signal.SIGTERM, signal.SIGINT):
        current = signal.getsignal(sig)
        if callable(current):  # only when a server installed its handler; never replace the defaults
            previous[sig] = current
            signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, old)

    return restore
