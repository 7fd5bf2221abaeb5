"""A server-sent events response fed by an organization's live-update subscription.

It ends cleanly when the client goes away (the disconnect is watched, not discovered on the next write),
when the subscription is closed (server shutdown), or after ``lifetime`` seconds: the browser's
``EventSource`` then reconnects by itself, which re-checks the caller's access and spreads clients again
over the instances behind a load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tokenboard.kit.jsonenc import compact_dumps
from tokenboard.kit.live import LiveHub, LiveMessage, Payload

HEARTBEAT_SECONDS = 15.0
RECONNECT_MS = 2000


def render_event(event: str, data: Payload) -> bytes:
    body = compact_dumps(data)
    return f"event: {event}\ndata: {body}\n\n".encode()


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        hub: LiveHub,
        organization_id: uuid.UUID,
        *,
        shape: Callable[[LiveMessage], Payload] = lambda message: message.data,
        heartbeat: float = HEARTBEAT_SECONDS,
        lifetime: float = 300.0,
    ) -> None:
        super().__init__(
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            media_type=self.media_type,
        )
        # A stream has no length: without this, Starlette would announce an empty body.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._hub = hub
        self._organization_id = organization_id
        self._shape = shape
        self._heartbeat = heartbeat
        self._lifetime = lifetime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Subscribed only once the response runs, so a request that fails before never leaves one behind.
        subscription = self._hub.subscribe(self._organization_id)

        async def close_on_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            subscription.close()

        watcher = asyncio.get_running_loop().create_task(close_on_disconnect())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send(
                {"type": "http.response.body", "body": _comment("open", RECONNECT_MS), "more_body": True}
            )
            deadline = asyncio.get_running_loop().time() + self._lifetime
            while not subscription.closed:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                message = await subscription.next(within=min(self._heartbeat, remaining))
                if message is not None:
                    chunk = render_event(message.event, self._shape(message))
                elif subscription.closed:
                    break
                else:
                    chunk = b": keep-alive\n\n"
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write: nothing left to tell it
        finally:
            subscription.close()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


def _comment(text: str, retry_ms: int) -> bytes:
    return f": {text}\nretry: {retry_ms}\n\n".encode()
