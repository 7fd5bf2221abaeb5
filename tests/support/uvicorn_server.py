"""Serve an app object over real HTTP on a loopback port, inside the test's event loop.

For what ``httpx.ASGITransport`` cannot show: it buffers whole responses, so a stream that never ends
(server-sent events) needs a real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from tests.support.live_server import free_port


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Run ``app`` with its lifespan on ``127.0.0.1``; yields the base URL. Open streams must be closed."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        server.should_exit = True
        await task  # raises what made it fail
        raise RuntimeError("uvicorn did not start within 5 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
