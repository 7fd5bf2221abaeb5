"""Real local peers for what leaves the process: an SMTP server and Redis."""

from __future__ import annotations

import asyncio
import uuid
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from redis.asyncio import Redis

from tests.support.live_server import free_port
from tokenboard.config import Settings
from tokenboard.kit.email import Mailer, OutgoingEmail
from tokenboard.kit.ratelimit import MemoryFailureCounter, RedisFailureCounter


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))  # type: ignore[attr-defined]
        return "250 OK"


async def test_mailer_delivers_through_smtp() -> None:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = Settings(
            smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, mail_from="tb@example.com"
        )
        await Mailer(settings).send(
            OutgoingEmail(to="ada@example.com", subject="Join us", body="Link: http://x/y")
        )
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    sender, recipients, content = inbox.messages[0]
    assert sender == "tb@example.com" and recipients == ["ada@example.com"]
    message = message_from_bytes(content)
    assert message["Subject"] == "Join us" and "Link: http://x/y" in message.get_payload()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_failure_counters_slide_and_clear(kind: str) -> None:
    redis = Redis.from_url("redis://127.0.0.1:6379/0") if kind == "redis" else None
    counter = RedisFailureCounter(redis) if redis is not None else MemoryFailureCounter()
    key = f"test:{uuid.uuid4().hex}"
    try:
        for _ in range(3):
            await counter.add(key, window=1)
        assert await counter.count(key, window=1) == 3
        await asyncio.sleep(1.1)
        assert await counter.count(key, window=1) == 0
        await counter.add(key, window=60)
        await counter.clear(key)
        assert await counter.count(key, window=60) == 0
    finally:
        if redis is not None:
            await redis.aclose()
