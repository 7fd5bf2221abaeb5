"""Conversations: the list from the rollup, a conversation's messages from its raw events, cost lines that
add up to each stored cost, file impact, and who may see which conversation (a conversation is one user's:
users who send the same conversation id each have their own, and see only their own)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.databases import BACKENDS, create_database, drop_database
from tests.support.factories import Factory, OrgSetup
from tokenboard.catalog.pricing import TokenUsage, compute_cost
from tokenboard.catalog.service import catalog
from tokenboard.kit.db import create_engine, create_sessionmaker
from tokenboard.members.roles import Role
from tokenboard.migrations import downgrade, upgrade
from tokenboard.models import Organization, UsageConversation, UsageEvent
from tokenboard.usage import repository
from tokenboard.usage.ingest import record_events

MODEL = "openai/gpt-4o"
REPORT = {"type": "file", "bytes": 48_000, "estimated_tokens": 12_000, "name": "Annual_Report.pdf"}


@pytest.fixture
async def convo(factory: Factory, app: Any) -> tuple[OrgSetup, OrgSetup, list[dict[str, Any]]]:
    await factory.run(lambda s: catalog.sync(s, provider_ids=["openai"]))
    app.state.catalog_cache.invalidate()
    setup = await factory.org_with_roles("Chat Co")
    other = await factory.org_with_roles("Elsewhere Co")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    prices = await factory.run(lambda s: catalog.prices_at(s, MODEL, start))
    assert prices is not None
    member, admin = setup.users[Role.member].id, setup.users[Role.admin].id

    def event(org: OrgSetup, n: int, conversation: str, user: Any, **extra: Any) -> dict[str, Any]:
        tokens = {
            "input_tokens": 15_000 * n + 7,
            "cached_input_tokens": 300 * n,
            "cache_write_5m_tokens": 11,
            "output_tokens": 250 * n + 3,
            "reasoning_tokens": 40,
        }
        cost = compute_cost(prices, TokenUsage(**tokens)).total_nanousd
        return {
            "organization_id": org.id,
            "request_id": f"{conversation}-{n}",
            "created_at": start + timedelta(minutes=7 * n),
            "user_id": user,
            "model_id": MODEL,
            "provider_id": "openai",
            "cost_nanousd": cost,
            "latency_ms": 900 + n,
            "time_to_first_token_ms": 200 + n,
            "conversation_id": conversation,
            "message_id": f"msg-{n}",
            **tokens,
        } | extra

    events = [
        event(setup, 1, "conv-a", member, attachments=[REPORT]),
        event(
            setup,
            2,
            "conv-a",
            member,
            attachments=[REPORT, {"type": "image_url", "bytes": 4000, "estimated_tokens": 1000}],
        ),
        event(setup, 3, "conv-a", member),
        event(setup, 4, "conv-b", admin),
        event(other, 5, "conv-a", other.users[Role.member].id),
    ]
    events[2]["cost_nanousd"] += 777  # a cost reported by the provider, not the catalog's
    await factory.run(lambda s: record_events(s, events))
    assert await factory.run(lambda s: record_events(s, events)) == []  # retried: nothing counted twice
    return setup, other, events


def summed(events: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "requests": len(events),
        "cost": sum(e["cost_nanousd"] for e in events),
        "input": sum(
            e["input_tokens"] + e["cached_input_tokens"] + e.get("cache_write_5m_tokens", 0) for e in events
        ),
        "output": sum(e["output_tokens"] + e["reasoning_tokens"] for e in events),
    }


def as_summed(item: dict[str, Any]) -> dict[str, int]:
    return {
        "requests": item["requests"],
        "cost": item["cost"]["nanousd"],
        "input": item["input_tokens"],
        "output": item["output_tokens"],
    }


async def test_the_list_and_who_sees_it(
    factory: Factory, convo: tuple[OrgSetup, OrgSetup, list[dict[str, Any]]]
) -> None:
    setup, _, events = convo
    url = f"/api/v1/organizations/{setup.id}/usage/conversations"
    async with await factory.client_for(setup.users[Role.owner]) as client:
        body = (await client.get(url)).json()
        mine = (await client.get(url, params={"mine": "true"})).json()
    assert [c["conversation_id"] for c in body["items"]] == ["conv-b", "conv-a"]
    assert mine["items"] == []
    for item in body["items"]:
        own = [e for e in events[:4] if e["conversation_id"] == item["conversation_id"]]
        assert as_summed(item) == summed(own)
        assert item["tokens"] == item["input_tokens"] + item["output_tokens"]
        first, last = min(e["created_at"] for e in own), max(e["created_at"] for e in own)
        assert item["duration_seconds"] == (last - first).total_seconds()
    async with await factory.client_for(setup.users[Role.member]) as client:
        body = (await client.get(url, params={"mine": "false"})).json()
        page = await client.get(
            f"/organizations/{setup.id}/usage/conversations", headers={"accept": "text/html"}
        )
        hidden = await client.get(f"{url}/conv-b")
        hidden_page = await client.get(f"/organizations/{setup.id}/usage/conversations/conv-b")
    assert [c["conversation_id"] for c in body["items"]] == ["conv-a"]
    assert "conv-b" not in page.text and "conv-a" in page.text
    assert setup.users[Role.admin].email not in page.text
    assert hidden.status_code == 404 and hidden_page.status_code == 404


async def test_messages_cost_lines_add_up(
    factory: Factory, convo: tuple[OrgSetup, OrgSetup, list[dict[str, Any]]]
) -> None:
    setup, other, events = convo
    async with await factory.client_for(setup.users[Role.member]) as client:
        r = await client.get(f"/api/v1/organizations/{setup.id}/usage/conversations/conv-a")
        page = await client.get(
            f"/organizations/{setup.id}/usage/conversations/conv-a", headers={"accept": "text/html"}
        )
    assert r.status_code == 200, r.text
    detail = r.json()
    own = events[:3]
    assert as_summed(detail["conversation"]) == summed(own)
    assert [m["request_id"] for m in detail["messages"]] == [e["request_id"] for e in own]
    for message, event in zip(detail["messages"], own, strict=True):
        assert message["cost"]["nanousd"] == event["cost_nanousd"]
        assert sum(line["amount"]["nanousd"] for line in message["cost_lines"]) == event["cost_nanousd"]
        exact = sum(Decimal(line["amount_usd"]) for line in message["cost_lines"])
        assert exact * 10**9 == event["cost_nanousd"] or message["cost_lines"][-1]["kind"] == "rounding"
        kinds = {line["kind"]: line for line in message["cost_lines"]}
        assert kinds["input"]["quantity"] == event["input_tokens"]
        assert kinds["cached_input_read"]["quantity"] == event["cached_input_tokens"]
        assert kinds["output"]["quantity"] == event["output_tokens"]
        for line in message["cost_lines"]:
            if line["unit_price_usd"] is not None:
                assert Decimal(line["unit_price_usd"]) * line["quantity"] == Decimal(line["amount_usd"])
        assert message["latency_ms"] == event["latency_ms"]
        assert message["time_to_first_token_ms"] == event["time_to_first_token_ms"]
        assert message["input_tokens"] == summed([event])["input"]
        assert message["output_tokens"] == summed([event])["output"]
        assert message["priced_from_catalog"] is True
    difference = [
        line for line in detail["messages"][2]["cost_lines"] if line["kind"] == "recorded_difference"
    ]
    assert [line["amount"]["nanousd"] for line in difference] == [777]

    # File impact: the report was sent in two messages.
    files = {f["name"]: f for f in detail["files"]}
    report = files["Annual_Report.pdf"]
    assert (report["size_bytes"], report["estimated_tokens"], report["reuse_count"]) == (48_000, 12_000, 2)
    first = detail["messages"][0]["attachments"][0]
    # Its share of what the prompt was charged: its tokens over the prompt's (at least its own).
    prompt_lines = ("input", "cached_input_read", "cache_write_5m", "cache_write_1h")
    message = detail["messages"][0]
    prompt_cost = sum(
        line["amount"]["nanousd"] for line in message["cost_lines"] if line["kind"] in prompt_lines
    )
    assert first["cost"]["nanousd"] == prompt_cost * 12_000 // max(message["input_tokens"], 12_000)
    for message in detail["messages"]:  # never more than the message, all of them together neither
        assert sum(a["cost"]["nanousd"] for a in message["attachments"]) <= message["cost"]["nanousd"]
    assert first["reuse_count"] == 2
    assert first["cost_share"] == pytest.approx(first["cost"]["nanousd"] / events[0]["cost_nanousd"])
    sent = [a for m in detail["messages"] for a in m["attachments"] if a["name"] == "Annual_Report.pdf"]
    assert len(sent) == 2 and report["cost"]["nanousd"] == sum(a["cost"]["nanousd"] for a in sent)

    assert page.status_code == 200
    assert "Annual_Report.pdf" in page.text and "Cost calculation" in page.text
    assert "Recorded cost differs" in page.text

    # The other organization's conversation with the same id stays there.
    async with await factory.client_for(other.users[Role.owner]) as client:
        theirs = (await client.get(f"/api/v1/organizations/{other.id}/usage/conversations/conv-a")).json()
        cross = await client.get(f"/api/v1/organizations/{setup.id}/usage/conversations/conv-a")
    assert [m["request_id"] for m in theirs["messages"]] == ["conv-a-5"]
    assert cross.status_code == 404 and "Annual_Report" not in cross.text


async def test_unknown_conversation_is_404(factory: Factory, convo: tuple[OrgSetup, OrgSetup, Any]) -> None:
    setup, _, _ = convo
    async with await factory.client_for(setup.users[Role.owner]) as client:
        r = await client.get(f"/api/v1/organizations/{setup.id}/usage/conversations/nope")
    assert r.status_code == 404


async def test_the_drill_down_reads_the_partial_conversation_index(
    factory: Factory, db: AsyncSession, backend: str
) -> None:
    """Events of no conversation stay out of the index (migration 0015); the drill-down still uses it."""
    setup = await factory.org_with_roles("Index Co")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    events = [
        {
            "organization_id": setup.id,
            "request_id": f"ix-{n}",
            "created_at": start + timedelta(seconds=n),
            "model_id": MODEL,
            "provider_id": "openai",
            "route": "chat",
            "conversation_id": "c-1" if n % 10 == 0 else None,
        }
        for n in range(200)
    ]
    await factory.run(lambda s: record_events(s, events))
    found = await repository.conversation_events(db, setup.id, "c-1")
    assert [e.request_id for e in found] == [f"ix-{n}" for n in range(0, 200, 10)]

    query = (
        select(UsageEvent)
        .where(UsageEvent.organization_id == setup.id, UsageEvent.conversation_id == "c-1")
        .order_by(UsageEvent.created_at)
    )
    compiled = query.compile(dialect=db.bind.dialect, compile_kwargs={"literal_binds": True})
    if backend == "postgresql":
        definition = await db.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_usage_events_org_conversation'")
        )
        await db.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(await db.scalars(text(f"EXPLAIN {compiled}")))
    else:
        definition = await db.scalar(
            text("SELECT sql FROM sqlite_master WHERE name = 'ix_usage_events_org_conversation'")
        )
        plan = "\n".join(row[-1] for row in await db.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "conversation_id IS NOT NULL" in str(definition), definition
    assert "ix_usage_events_org_conversation" in plan, plan


async def test_a_conversation_id_two_members_send_is_a_conversation_each(
    factory: Factory, convo: tuple[OrgSetup, OrgSetup, list[dict[str, Any]]]
) -> None:
    """The audit's case: member A sends ``team-thread-42``, then member B an expensive request with the same
    id. Each sees only his own requests and cost, the other's is a 404; owners and admins see a conversation
    per user (and the requests of no user in their own), the detail naming whose."""
    setup, _, _ = convo
    a, b = setup.users[Role.member], await factory.user(name="Chat Co Member B")
    await factory.add_member(setup.organization, b, Role.member)
    base = {"model_id": MODEL, "provider_id": "openai", "conversation_id": "team-thread-42"}
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def sent(n: int, user: Any, cost: int, minutes: int) -> dict[str, Any]:
        return base | {
            "organization_id": setup.id,
            "request_id": f"thread-{n}",
            "created_at": start + timedelta(minutes=minutes),
            "user_id": user,
            "input_tokens": 100 * n,
            "cached_input_tokens": 0,
            "output_tokens": 10 * n,
            "reasoning_tokens": n,
            "cost_nanousd": cost,
        }

    mine, his = [sent(1, a.id, 1_000, 0), sent(3, a.id, 2_000, 30)], [sent(2, b.id, 9_000_000, 5)]
    nobody = [sent(4, None, 77, 1)]  # recorded without a user (an API caller's usage, say)
    await factory.run(lambda s: record_events(s, mine[:1]))
    await factory.run(lambda s: record_events(s, [*his, *nobody, *mine]))  # A's first one retried
    assert await factory.run(lambda s: record_events(s, [*mine, *his, *nobody])) == []

    api = f"/api/v1/organizations/{setup.id}/usage/conversations"
    page = f"/organizations/{setup.id}/usage/conversations"
    html = {"accept": "text/html"}
    for user, own, other in ((a, mine, b), (b, his, a)):
        async with await factory.client_for(user) as client:
            listed = (await client.get(api)).json()["items"]
            detail = await client.get(f"{api}/team-thread-42")
            named = await client.get(f"{api}/team-thread-42", params={"user": str(user.id)})
            theirs = await client.get(f"{api}/team-thread-42", params={"user": str(other.id)})
            no_user = await client.get(f"{api}/team-thread-42", params={"user": "none"})
            unknown = await client.get(f"{api}/no-such-thread")
            listing = await client.get(page, headers=html)
            shown = await client.get(f"{page}/team-thread-42", headers=html)
            theirs_shown = await client.get(f"{page}/team-thread-42?user={other.id}", headers=html)
        thread = [c for c in listed if c["conversation_id"] == "team-thread-42"]
        assert [c["user_id"] for c in thread] == [str(user.id)]
        assert as_summed(thread[0]) == summed(own)
        assert detail.status_code == 200, detail.text
        assert detail.json() == named.json()
        assert detail.json()["conversation"]["user_id"] == str(user.id)
        assert as_summed(detail.json()["conversation"]) == summed(own)
        assert [m["request_id"] for m in detail.json()["messages"]] == [e["request_id"] for e in own]
        # Another's conversation answers as an unknown one does: nothing about it is told.
        assert theirs.status_code == no_user.status_code == unknown.status_code == 404
        assert theirs.json() == no_user.json() == unknown.json()
        assert str(other.id) not in theirs.text and "details" not in theirs.json()["error"]
        assert listing.status_code == 200 and other.email not in listing.text
        assert f"team-thread-42?user={user.id}" in listing.text
        assert shown.status_code == 200 and theirs_shown.status_code == 404
        others = {e["request_id"] for e in [*mine, *his, *nobody] if e not in own}
        assert all(f'data-message="{r}"' not in shown.text for r in others)
        assert all(f'data-message="{e["request_id"]}"' in shown.text for e in own)

    async with await factory.client_for(setup.users[Role.admin]) as client:
        listed = (await client.get(api)).json()["items"]
        ambiguous = await client.get(f"{api}/team-thread-42")
        rows = {
            key: await client.get(f"{api}/team-thread-42", params={"user": key})
            for key in (str(a.id), str(b.id), "none", "NONE", a.id.hex)
        }
        unknown = await client.get(f"{api}/team-thread-42", params={"user": str(setup.users[Role.owner].id)})
        invalid = await client.get(f"{api}/team-thread-42", params={"user": "someone"})
        only_mine = (await client.get(api, params={"mine": "true"})).json()["items"]
        listing = await client.get(page, headers=html)
        shown = await client.get(f"{page}/team-thread-42?user={b.id}", headers=html)
        ambiguous_page = await client.get(f"{page}/team-thread-42", headers=html)
    thread = [c for c in listed if c["conversation_id"] == "team-thread-42"]
    # Most recently active first: A's (his last request at 30 min), B's (5), nobody's (1).
    assert [(c["user_id"], c["email"]) for c in thread] == [
        (str(a.id), a.email),
        (str(b.id), b.email),
        (None, None),
    ]
    assert [as_summed(c) for c in thread] == [summed(mine), summed(his), summed(nobody)]
    assert ambiguous.status_code == 404
    error = ambiguous.json()["error"]
    assert "3 users" in error["message"] and "user parameter" in error["message"]
    assert sorted(error["details"]["users"]) == sorted([str(a.id), str(b.id), "none"])
    for key, own in (
        (str(a.id), mine),
        (str(b.id), his),
        ("none", nobody),
        ("NONE", nobody),
        (a.id.hex, mine),
    ):
        assert rows[key].status_code == 200, rows[key].text
        assert [m["request_id"] for m in rows[key].json()["messages"]] == [e["request_id"] for e in own]
        assert as_summed(rows[key].json()["conversation"]) == summed(own)
    assert unknown.status_code == 404 and invalid.status_code == 422
    assert [c["conversation_id"] for c in only_mine] == ["conv-b"]  # the admin's own (the fixture's)
    for key in (str(a.id), str(b.id), "none"):
        assert f"team-thread-42?user={key}" in listing.text
    assert listing.text.count('data-conversation="team-thread-42"') == 3
    assert shown.status_code == 200 and 'data-message="thread-2"' in shown.text
    assert 'data-message="thread-1"' not in shown.text
    assert ambiguous_page.status_code == 404


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0019_rekeys_the_conversations_and_recomputes_them_both_ways(
    backend: str, tmp_path: Path
) -> None:
    """Usage recorded at head (conversation ids shared by users, and by no user); down to 0018: one row per
    id again, its user the earliest event's, every user's events summed; up again: the rows the pipeline
    had made, under the new key."""
    from tests.usage.test_rollups import make_events, shared_conversations

    url, name = await asyncio.to_thread(create_database, backend, tmp_path, "conversations")
    org_id, users = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4(), None]
    nil = "00000000-0000-0000-0000-000000000000"

    async def read() -> tuple[list[str], list[tuple[Any, ...]], list[dict[str, Any]]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                if backend == "sqlite":
                    info = (await conn.exec_driver_sql("PRAGMA table_info(usage_conversations)")).all()
                    key = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
                else:
                    key = list(
                        await conn.scalars(
                            text(
                                "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) "
                                "WITH ORDINALITY AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = "
                                "i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = "
                                "'usage_conversations'::regclass AND i.indisprimary ORDER BY k.n"
                            )
                        )
                    )
                table = UsageConversation.__table__
                rows = sorted((tuple(r) for r in await conn.execute(select(*table.c))), key=repr)
                # The columns usage_events has at this revision (later migrations added some).
                present = {
                    c["name"] for c in await conn.run_sync(lambda c: inspect(c).get_columns("usage_events"))
                }
                stored = [c for c in UsageEvent.__table__.c if c.name in present]
                events = [dict(r) for r in (await conn.execute(select(*stored))).mappings()]
        finally:
            await engine.dispose()
        return key, rows, events

    try:
        engine = create_engine(url)
        async with create_sessionmaker(engine)() as session:
            session.add(Organization(id=org_id, name="Threads", seat_limit=5))
            await session.flush()
            events = make_events(org_id, users, 200, seed=19) + shared_conversations(org_id, users, seed=19)
            for i in range(0, len(events), 60):
                await record_events(session, events[i : i + 60])
            await session.commit()
        await engine.dispose()
        key, head, raw = await read()
        assert key == ["organization_id", "conversation_id", "user_id"]
        assert len({r[1] for r in head}) < len(head)  # ids shared by users

        await asyncio.to_thread(downgrade, url, "0018")
        key, old, _ = await read()
        assert key == ["organization_id", "conversation_id"]
        expected = []
        for (org, conversation), found in group_by(raw, ("organization_id", "conversation_id")).items():
            first = min(found, key=lambda e: (e["created_at"], e["id"]))
            usage = summed(found)
            expected.append(
                (
                    org,
                    conversation,
                    first["user_id"] or uuid.UUID(nil),
                    first["created_at"],
                    max(e["created_at"] for e in found),
                    usage["requests"],
                    sum(e["cache_write_1h_tokens"] for e in found) + usage["input"],
                    usage["output"],
                    usage["cost"],
                )
            )
        assert old == sorted(expected, key=repr)

        await asyncio.to_thread(upgrade, url)
        key, again, _ = await read()
        assert key == ["organization_id", "conversation_id", "user_id"]
        assert again == head
    finally:
        await asyncio.to_thread(drop_database, backend, name)


def group_by(
    events: list[dict[str, Any]], columns: tuple[str, ...]
) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """The events that name a conversation, per value of ``columns``."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for e in events:
        if e["conversation_id"]:
            groups.setdefault(tuple(e[c] for c in columns), []).append(e)
    return groups


def test_a_files_cost_is_its_share_of_what_the_prompt_was_charged() -> None:
    """A prompt mostly read from cache, with a large file: the file was charged at the prices its tokens
    had (mostly the cached price), never more than the message (it once showed 742% of it)."""
    from decimal import Decimal as D

    from tokenboard.models import UsageEvent
    from tokenboard.usage.reports import CostItem, _attachments

    event = UsageEvent(
        input_tokens=100,
        cached_input_tokens=10_000,
        cache_write_5m_tokens=0,
        cache_write_1h_tokens=0,
        output_tokens=50,
        cost_nanousd=4_050_000,
        attachments=[{"type": "file", "name": "big.pdf", "estimated_tokens": 10_022}],
    )
    lines = [
        CostItem("input", "Input tokens", 100, D("0.000003"), D("0.0003"), 300_000),
        CostItem("cached_input_read", "Cached", 10_000, D("0.0000003"), D("0.003"), 3_000_000),
        CostItem("output", "Output tokens", 50, D("0.000015"), D("0.00075"), 750_000),
    ]
    (file,) = _attachments(event, lines)
    assert file.cost_nanousd == 3_300_000 * 10_022 // 10_100
    assert file.cost_share <= 1
    # Estimates beyond the prompt are scaled down to it: two such files share the prompt's cost.
    event.attachments = [
        {"type": "file", "estimated_tokens": 20_000},
        {"type": "image", "estimated_tokens": 20_000},
    ]
    assert [a.cost_nanousd for a in _attachments(event, lines)] == [1_650_000, 1_650_000]
