"""The usage page's JSON twin (and its page) against an independent computation over the raw events.

Events are seeded relative to today (UTC) so the named periods cover different slices; every card and
table value of ``GET /api/v1/organizations/{org}/usage`` is recomputed below in plain Python from the
event rows read back from ``usage_events``, for several periods and both values of "only my usage".
"""

from __future__ import annotations

import calendar
import random
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.factories import Factory, OrgSetup
from tests.usage.test_rollups import day_of, group, stored_events, t_in, t_out, usage_of
from tokenboard.catalog.service import catalog
from tokenboard.members.roles import Role
from tokenboard.usage.ingest import record_events
from tokenboard.usage.reports import MODEL_ROWS_PER_PAGE

MODELS = [
    ("openai/gpt-4o", "openai"),
    ("openai/gpt-4o-mini", "openai"),
    ("anthropic/claude-sonnet-4", "anthropic"),
]


def today() -> date:
    return datetime.now(UTC).date()


def events_for(setup: OrgSetup, extra_user: uuid.UUID, n: int = 260, seed: int = 4) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    users = [setup.users[r].id for r in Role] + [extra_user, None]
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    events = []
    for i in range(n):
        model, provider = rnd.choice(MODELS)
        # Most usage is recent (so week and month hold plenty), some reaches back over a year.
        back = rnd.choice([rnd.randrange(7), rnd.randrange(40), rnd.randrange(420)])
        at = now - timedelta(days=back, hours=rnd.randrange(20))
        events.append(
            {
                "organization_id": setup.id,
                "request_id": f"rep-{seed}-{i}",
                "created_at": at,
                "user_id": rnd.choice(users),
                "model_id": model,
                "provider_id": provider,
                "status_code": rnd.choice([200] * 9 + [429]),
                "input_tokens": rnd.randrange(4000),
                "cached_input_tokens": rnd.randrange(400),
                "cache_write_5m_tokens": rnd.randrange(50),
                "cache_write_1h_tokens": rnd.randrange(20),
                "output_tokens": rnd.randrange(1500),
                "reasoning_tokens": rnd.randrange(200),
                "cost_nanousd": rnd.randrange(5 * 10**7),
                "latency_ms": rnd.randrange(50, 5000),
                "feature": rnd.choice(["chat", "agents", None]),
                "tool": rnd.choice(["web_search", "code", None]),
                "integration": rnd.choice(["slack", None]),
                "team_id": rnd.choice([setup.team.id, None]),
                "workspace_id": rnd.choice([setup.workspace.id, None]),
                "conversation_id": rnd.choice([None, f"chat-{rnd.randrange(12)}"]),
            }
        )
    return events


@pytest.fixture
async def seeded(factory: Factory, db: AsyncSession) -> tuple[OrgSetup, list[dict[str, Any]], dict[Any, str]]:
    setup = await factory.org_with_roles("Report Co")
    extra = await factory.user(name="Second Member")
    await factory.add_member(setup.organization, extra, Role.member)
    setup.extra["member2"] = extra
    events = events_for(setup, extra.id)
    await factory.run(lambda s: record_events(s, events))
    # A retried delivery of the same events changes nothing.
    assert await factory.run(lambda s: record_events(s, events[:50])) == []
    raw = await stored_events(db, setup.id)
    assert len(raw) == len(events)
    emails = {u.id: u.email for u in [*setup.users.values(), extra]}
    return setup, raw, emails


def period_range(period: str, t: date) -> tuple[date | None, date | None]:
    days = {"week": 7, "month": 30, "year": 365}
    if period == "all":
        return None, None
    return t - timedelta(days=days[period] - 1), t


def within(raw: list[dict[str, Any]], start: date | None, end: date | None) -> list[dict[str, Any]]:
    return [e for e in raw if (start is None or day_of(e) >= start) and (end is None or day_of(e) <= end)]


def totals(row: dict[str, Any]) -> dict[str, int]:
    return {
        "requests": row["requests"],
        "cost_nanousd": row["cost"]["nanousd"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
    }


def half_even(a: int, b: int) -> int:
    q, r = divmod(a, b)
    return q + (1 if 2 * r > b or (2 * r == b and q % 2) else 0)


async def get_report(client: Any, setup: OrgSetup, **params: Any) -> dict[str, Any]:
    r = await client.get(f"/api/v1/organizations/{setup.id}/usage", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def all_pages(
    client: Any, setup: OrgSetup, **params: Any
) -> tuple[dict[str, Any], list[Any], list[Any]]:
    first = await get_report(client, setup, **params)
    days = list(first["by_day"])
    for page in range(2, first["pagination"]["pages"] + 1):
        days += (await get_report(client, setup, page=page, **params))["by_day"]
    # The By Model & Day table pages by rows, on its own: every page full but the last.
    model_days, body, model_page = [], first, 1
    while True:
        paging = body["model_pagination"]
        assert paging["page"] == model_page and paging["rows_per_page"] == MODEL_ROWS_PER_PAGE
        rows = body["by_model_day"]
        assert len(rows) == MODEL_ROWS_PER_PAGE if paging["more"] else len(rows) <= MODEL_ROWS_PER_PAGE
        model_days += rows
        if not paging["more"]:
            break
        model_page += 1
        body = await get_report(client, setup, model_page=model_page, **params)
        assert body["by_day"] == first["by_day"]  # the By Day table stays on its page
    return first, days, model_days


def check_report(
    report: dict[str, Any],
    days: list[dict[str, Any]],
    model_days: list[dict[str, Any]],
    raw: list[dict[str, Any]],
    start: date | None,
    end: date | None,
    user: uuid.UUID | None,
    setup: OrgSetup,
    emails: dict[Any, str],
) -> None:
    t = today()
    scoped = [e for e in raw if user is None or e["user_id"] == user]
    events = within(scoped, start, end)
    assert events, "the seed must leave usage in every period checked"

    # Cards
    s = report["summary"]
    assert totals(s) == usage_of(events)
    assert s["tokens"] == s["input_tokens"] + s["output_tokens"]
    assert s["errors"] == sum(1 for e in events if e["status_code"] >= 400)
    assert s["avg_cost_per_request"]["nanousd"] == half_even(usage_of(events)["cost_nanousd"], len(events))
    week = within(scoped, t - timedelta(days=6), t)
    assert s["active_users_7d"] == len({e["user_id"] for e in week if e["user_id"] is not None})

    # By Day, every page, newest first
    by_day = group(events, day_of)
    assert [d["day"] for d in days] == [k.isoformat() for k in sorted(by_day, reverse=True)]
    for d in days:
        rows = by_day[date.fromisoformat(d["day"])]
        assert totals(d) == usage_of(rows), d["day"]
        assert d["users"] == len({e["user_id"] for e in rows if e["user_id"] is not None}), d["day"]

    # By Model & Day, every page of rows: newest day first, then by cost, each (day, model) once
    by_model_day = group(events, lambda e: (day_of(e), e["model_id"]))
    assert len(model_days) == len(by_model_day)
    assert {(m["day"], m["model"]) for m in model_days} == {(k[0].isoformat(), k[1]) for k in by_model_day}
    order = [(m["day"], m["cost"]["nanousd"], m["model"]) for m in model_days]
    assert order == sorted(order, key=lambda k: (date.fromisoformat(k[0]).toordinal() * -1, -k[1], k[2]))
    for m in model_days:
        rows = by_model_day[(date.fromisoformat(m["day"]), m["model"])]
        assert totals(m) == usage_of(rows)
        assert m["users"] == len({e["user_id"] for e in rows if e["user_id"] is not None})
        assert m["provider"] == rows[0]["provider_id"]

    # Daily trend: every day of the period (from the first usage for "all"), zeros included
    trend = {date.fromisoformat(p["day"]): p["cost"]["nanousd"] for p in report["trend"]}
    assert sum(trend.values()) == usage_of(events)["cost_nanousd"]
    for day, rows in by_day.items():
        assert trend[day] == sum(e["cost_nanousd"] for e in rows)
    assert max(trend) == (end or t)

    # Weekly pattern: requests per (weekday, hour)
    cells = group(
        events, lambda e: (e["created_at"].astimezone(UTC).weekday(), e["created_at"].astimezone(UTC).hour)
    )
    assert len(report["weekly_pattern"]) == 7 * 24
    for cell in report["weekly_pattern"]:
        rows = cells.get((cell["weekday"], cell["hour"]), [])
        assert cell["requests"] == len(rows)
        assert cell["cost"]["nanousd"] == sum(e["cost_nanousd"] for e in rows)

    # Month over month: the last 12 calendar months of the scope (any period)
    months = report["months"]
    assert len(months) == 12 and months[-1]["month"] == t.replace(day=1).isoformat()
    by_month = group(scoped, lambda e: day_of(e).replace(day=1))
    for m in months:
        assert totals(m) == usage_of(by_month.get(date.fromisoformat(m["month"]), []))

    # Year over year: every year with usage, by month
    by_year: dict[int, list[int]] = defaultdict(lambda: [0] * 12)
    for e in scoped:
        by_year[day_of(e).year][day_of(e).month - 1] += e["cost_nanousd"]
    assert {y["year"]: [m["nanousd"] for m in y["months"]] for y in report["years"]} == dict(by_year)

    # Model popularity and provider mix
    by_model = group(events, lambda e: e["model_id"])
    total_cost = usage_of(events)["cost_nanousd"]
    assert [m["model"] for m in report["models"]] == sorted(by_model, key=lambda k: (-len(by_model[k]), k))
    for m in report["models"]:
        rows = by_model[m["model"]]
        assert totals(m) == usage_of(rows)
        errors = sum(1 for e in rows if e["status_code"] >= 400)
        assert m["errors"] == errors and m["error_rate"] == pytest.approx(errors / len(rows))
        assert m["cost_share"] == pytest.approx(usage_of(rows)["cost_nanousd"] / total_cost)
        assert m["latency_avg_ms"] == pytest.approx(sum(e["latency_ms"] for e in rows) / len(rows))
        assert m["latency_p50_ms"] is not None and m["latency_p50_ms"] <= m["latency_p95_ms"]
    by_provider = group(events, lambda e: e["provider_id"])
    assert {p["provider"]: totals(p) for p in report["providers"]} == {
        k: usage_of(v) for k, v in by_provider.items()
    }

    # Breakdowns, with names for teams and workspaces
    names = {str(setup.team.id): setup.team.name, str(setup.workspace.id): setup.workspace.name}
    for dimension, column in (
        ("team", "team_id"),
        ("workspace", "workspace_id"),
        ("feature", "feature"),
        ("tool", "tool"),
        ("integration", "integration"),
    ):
        expected = group([e for e in events if e[column] is not None], lambda e, c=column: str(e[c]))  # type: ignore[misc]
        got = report["breakdowns"][dimension]
        assert {row["value"]: totals(row) for row in got} == {k: usage_of(v) for k, v in expected.items()}
        for row in got:
            assert row["label"] == names.get(row["value"], row["value"])
    assert report["breakdowns"]["workspace"][0]["label"] == setup.workspace.name

    # Top users and the distribution: only when seeing everyone
    if user is None:
        per_user = group(events, lambda e: e["user_id"])
        costs = sorted(
            (sum(e["cost_nanousd"] for e in v) for k, v in per_user.items() if k is not None), reverse=True
        )
        assert [c["nanousd"] for c in report["distribution"]["costs"]] == costs
        assert report["distribution"]["members"] == len(costs)
        top = report["top_users"]
        assert len(top) == min(10, len(per_user))
        for line in top:
            assert totals(line) == usage_of(per_user[uuid.UUID(line["user_id"]) if line["user_id"] else None])
            assert line["email"] == (emails[uuid.UUID(line["user_id"])] if line["user_id"] else None)
        assert [line["cost"]["nanousd"] for line in top] == sorted(
            (sum(e["cost_nanousd"] for e in v) for v in per_user.values()), reverse=True
        )[: len(top)]
    else:
        assert report["top_users"] is None and report["distribution"] is None

    check_month(report["month"], scoped, t)


def check_month(
    month: dict[str, Any], scoped: list[dict[str, Any]], t: date, *, quota_tokens: int | None = None
) -> None:
    first = t.replace(day=1)
    last_first = (first - timedelta(days=1)).replace(day=1)
    last_days = calendar.monthrange(last_first.year, last_first.month)[1]
    days_in_month = calendar.monthrange(t.year, t.month)[1]
    this = sum(e["cost_nanousd"] for e in scoped if first <= day_of(e) <= t)
    last = [e for e in scoped if last_first <= day_of(e) < first]
    same_day = last_first.replace(day=min(t.day, last_days))
    to_date = sum(e["cost_nanousd"] for e in last if day_of(e) <= same_day)
    assert month["cost"]["nanousd"] == this
    assert month["requests"] == sum(1 for e in scoped if first <= day_of(e) <= t)
    assert month["daily_average"]["nanousd"] == half_even(this, t.day)
    assert month["projection"]["nanousd"] == half_even(this * days_in_month, t.day)
    assert month["last_month_total"]["nanousd"] == sum(e["cost_nanousd"] for e in last)
    assert month["last_month_to_date"]["nanousd"] == to_date
    assert month["direction"] == ("flat" if this == to_date else "up" if this > to_date else "down")
    if to_date:
        assert month["change"] == pytest.approx((this - to_date) / to_date)
    # Tokens as the tokens card counts them (cached reads and cache writes in, reasoning out), averaged and
    # projected to the month end by the cost's rule.
    month_events = [e for e in scoped if first <= day_of(e) <= t]
    tokens_in, tokens_out = sum(t_in(e) for e in month_events), sum(t_out(e) for e in month_events)
    tokens = tokens_in + tokens_out
    assert (month["input_tokens"], month["output_tokens"], month["tokens"]) == (tokens_in, tokens_out, tokens)
    assert month["daily_average_tokens"] == half_even(tokens, t.day)
    assert month["projection_tokens"] == half_even(tokens * days_in_month, t.day)
    assert month["quota_tokens"] == quota_tokens
    if quota_tokens is None:
        assert month["quota_tokens_used"] is None
    else:
        assert month["quota_tokens_used"] == pytest.approx(tokens / quota_tokens)


@pytest.mark.parametrize("period", ["week", "month", "year", "all"])
@pytest.mark.parametrize("mine", [False, True])
async def test_report_matches_the_raw_events(
    factory: Factory, seeded: tuple[OrgSetup, list[dict[str, Any]], dict[Any, str]], period: str, mine: bool
) -> None:
    setup, raw, emails = seeded
    admin = setup.users[Role.admin]
    async with await factory.client_for(admin) as client:
        report, days, model_days = await all_pages(client, setup, period=period, mine=str(mine).lower())
    assert report["period"]["key"] == period
    assert report["scope"] == {"only_mine": mine, "forced": False}
    start, end = period_range(period, today())
    check_report(report, days, model_days, raw, start, end, admin.id if mine else None, setup, emails)
    if period in ("year", "all") and not mine:  # the seed makes the model table span pages
        assert len(model_days) > 2 * MODEL_ROWS_PER_PAGE


async def test_custom_range_and_day_lines(
    factory: Factory, seeded: tuple[OrgSetup, list[dict[str, Any]], dict[Any, str]]
) -> None:
    setup, raw, emails = seeded
    t = today()
    start, end = t - timedelta(days=45), t - timedelta(days=3)
    async with await factory.client_for(setup.users[Role.owner]) as client:
        report, days, model_days = await all_pages(
            client, setup, start=start.isoformat(), end=end.isoformat()
        )
        assert report["period"] | {"label": ""} == {
            "key": "custom",
            "label": "",
            "start": start.isoformat(),
            "end": end.isoformat(),
        }
        check_report(report, days, model_days, raw, start, end, None, setup, emails)
        # The expansions: per-user lines of a By Day row and a By Model & Day row.
        for d in days[:3]:
            lines = (await client.get(f"/api/v1/organizations/{setup.id}/usage/days/{d['day']}/users")).json()
            rows = [e for e in raw if day_of(e) == date.fromisoformat(d["day"])]
            check_lines(lines, rows, emails)
        for m in model_days[:3]:
            url = f"/api/v1/organizations/{setup.id}/usage/days/{m['day']}/users"
            lines = (await client.get(url, params={"model": m["model"]})).json()
            rows = [
                e for e in raw if day_of(e) == date.fromisoformat(m["day"]) and e["model_id"] == m["model"]
            ]
            check_lines(lines, rows, emails)
            assert sum(line["cost"]["nanousd"] for line in lines) == m["cost"]["nanousd"]


def check_lines(lines: list[dict[str, Any]], rows: list[dict[str, Any]], emails: dict[Any, str]) -> None:
    per_user = group(rows, lambda e: e["user_id"])
    assert {line["user_id"] and uuid.UUID(line["user_id"]): totals(line) for line in lines} == {
        k: usage_of(v) for k, v in per_user.items()
    }
    for line in lines:
        assert line["email"] == (emails[uuid.UUID(line["user_id"])] if line["user_id"] else None)
        assert line["tokens"] == line["input_tokens"] + line["output_tokens"]
    assert [line["cost"]["nanousd"] for line in lines] == sorted(
        (line["cost"]["nanousd"] for line in lines), reverse=True
    )
    assert all(t_in(e) >= 0 and t_out(e) >= 0 for e in rows)


async def test_members_see_only_their_own_usage(
    factory: Factory, seeded: tuple[OrgSetup, list[dict[str, Any]], dict[Any, str]]
) -> None:
    setup, raw, emails = seeded
    member = setup.users[Role.member]
    for role in (Role.member, Role.billing_manager):
        user = setup.users[role]
        others = [email for user_id, email in emails.items() if user_id != user.id]
        async with await factory.client_for(user) as client:
            for mine in ("false", "true"):
                report, days, model_days = await all_pages(client, setup, period="all", mine=mine)
                assert report["scope"] == {"only_mine": True, "forced": True}
                check_report(report, days, model_days, raw, None, None, user.id, setup, emails)
                assert report["month"]["quota"] is None
            for d in days[:5]:
                lines = (
                    await client.get(f"/api/v1/organizations/{setup.id}/usage/days/{d['day']}/users")
                ).json()
                assert [line["user_id"] for line in lines] == [str(user.id)]
            day = days[0]["day"]
            html = await client.get(
                f"/organizations/{setup.id}/usage",
                params={"period": "all", "expand": day},
                headers={"accept": "text/html"},
            )
            assert html.status_code == 200
            assert user.email in html.text  # their own line, expanded
            for email in others:
                assert email not in html.text, (role, email)
    # Someone else's day, asked directly: no lines of anyone else.
    other_day = next(day_of(e) for e in raw if e["user_id"] not in (member.id,) and e["user_id"] is not None)
    async with await factory.client_for(member) as client:
        lines = (await client.get(f"/api/v1/organizations/{setup.id}/usage/days/{other_day}/users")).json()
        assert all(line["user_id"] == str(member.id) for line in lines)


async def test_the_page_shows_the_values(
    factory: Factory, seeded: tuple[OrgSetup, list[dict[str, Any]], dict[Any, str]]
) -> None:
    setup, raw, emails = seeded
    async with await factory.client_for(setup.users[Role.owner]) as client:
        report = await get_report(client, setup, period="month")
        page = await client.get(
            f"/organizations/{setup.id}/usage?period=month", headers={"accept": "text/html"}
        )
        expanded_day = report["by_day"][0]["day"]
        model = report["by_model_day"][0]["model"]
        expanded = await client.get(
            f"/organizations/{setup.id}/usage",
            params={"period": "month", "expand": f"{report['by_model_day'][0]['day']}|{model}"},
            headers={"accept": "text/html"},
        )
    assert page.status_code == 200
    text = page.text
    for key in ("spend", "requests", "avg", "tokens", "active"):
        assert f'data-value="{key}"' in text
    assert report["summary"]["cost"]["display"] in text
    assert f"{report['summary']['requests']:,}" in text
    s = report["summary"]
    assert f"Input {s['input_tokens']:,} · Output {s['output_tokens']:,}" in text
    assert f'id="day-{expanded_day}"' in text and 'data-live-url="/api/v1/organizations/' in text
    # Each row's "Show users" link is this page's URL with the row to expand.
    model_day = report["by_model_day"][0]["day"]
    for key, anchor in ((expanded_day, f"#day-{expanded_day}"), (f"{model_day}|{model}", "")):
        href = f"/organizations/{setup.id}/usage?" + urlencode({"period": "month", "page": 1, "expand": key})
        assert f'href="{escape(href)}{anchor}"' in text
    assert text.count("<svg") >= 6
    assert setup.workspace.name in text  # breakdowns show names, not ids
    assert str(setup.workspace.id) not in text
    # The model row expanded server-side (no JavaScript): its users' lines are in the page.
    day = date.fromisoformat(report["by_model_day"][0]["day"])
    users = {e["user_id"] for e in raw if day_of(e) == day and e["model_id"] == model}
    for user_id in users:
        if user_id is not None:
            assert f'data-line="{emails[user_id]}"' in expanded.text


async def test_the_model_table_pages_by_rows_on_its_own(
    factory: Factory, seeded: tuple[OrgSetup, list[dict[str, Any]], dict[Any, str]]
) -> None:
    setup, _raw, _emails = seeded
    base = f"/organizations/{setup.id}/usage"
    async with await factory.client_for(setup.users[Role.owner]) as client:
        first = await get_report(client, setup, period="all")
        second = await get_report(client, setup, period="all", model_page=2, page=2)
        html = (await client.get(base, params={"period": "all", "model_page": 2, "page": 2})).text
        past = await client.get(base, params={"period": "all", "model_page": 999})
        bad = await client.get(f"/api/v1/organizations/{setup.id}/usage", params={"model_page": 0})
    rows = MODEL_ROWS_PER_PAGE
    assert first["model_pagination"] == {"page": 1, "rows_per_page": rows, "more": True}
    assert second["model_pagination"]["page"] == 2 and second["pagination"]["page"] == 2
    assert len(html.split('class="row" data-day=')) - 1 == len(second["by_day"]) + rows
    # Its pager keeps the day table's page, and the day pager keeps the model page.
    for model_page, rel in ((1, "prev"), (3, "next")):
        href = base + "?" + urlencode({"period": "all", "page": 2, "model_page": model_page})
        assert f'<a href="{escape(href)}#by-model-title" rel="{rel}">' in html
    assert f"Rows {rows + 1}&ndash;{2 * rows}" in html
    newer_days = base + "?" + urlencode({"period": "all", "page": 1, "model_page": 2})
    assert f'href="{escape(newer_days)}" rel="prev">Newer days' in html
    # Past the last row: an empty table saying so, still a page; a page 0 is a clear 422.
    assert past.status_code == 200 and "No more rows in this period." in past.text
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"start": "2026-02-10", "end": "2026-02-01"}, "before the start"),
        ({"start": "2010-01-01", "end": "2025-01-01"}, "at most 10 years"),
        ({"period": "custom", "start": "2026-02-01"}, "both a start and an end"),
        ({"period": "decade"}, "Unknown period"),
    ],
)
async def test_bad_ranges_are_a_clear_422(factory: Factory, params: dict[str, str], words: str) -> None:
    setup = await factory.org_with_roles("Range Co")
    async with await factory.client_for(setup.users[Role.owner]) as client:
        api = await client.get(f"/api/v1/organizations/{setup.id}/usage", params=params)
        assert api.status_code == 422, api.text
        assert words in api.json()["error"]["message"]
        page = await client.get(
            f"/organizations/{setup.id}/usage", params=params, headers={"accept": "text/html"}
        )
        assert page.status_code == 422
        assert words in page.text and "data-range-error" in page.text
        bad_date = await client.get(
            f"/organizations/{setup.id}/usage", params={"start": "tomorrow", "end": "x"}
        )
        assert bad_date.status_code == 422


async def test_quota_setting_drives_the_quota_view(
    factory: Factory, seeded: tuple[OrgSetup, list[dict[str, Any]], dict[Any, str]]
) -> None:
    setup, _raw, _ = seeded
    async with await factory.client_for(setup.users[Role.admin]) as client:
        r = await client.patch(
            f"/api/v1/organizations/{setup.id}/settings", json={"monthly_usage_quota_nanousd": 5 * 10**9}
        )
        assert r.status_code == 200 and r.json()["monthly_usage_quota_nanousd"] == 5 * 10**9
        month = (await get_report(client, setup, period="week"))["month"]
        assert month["quota"]["nanousd"] == 5 * 10**9 and month["quota"]["usd"] == "5.00"
        assert month["quota_used"] == pytest.approx(month["cost"]["nanousd"] / (5 * 10**9))
        assert (await get_report(client, setup, mine="true"))["month"]["quota"] is None
        page = await client.get(f"/organizations/{setup.id}/usage", headers={"accept": "text/html"})
        assert "of $5.00" in page.text
        # The settings form: an amount in USD; empty removes the quota.
        form = await client.post(
            f"/organizations/{setup.id}/settings",
            data={"name": "Report Co", "monthly_usage_quota_usd": "12.50", "has_quota_field": "true"},
        )
        assert form.status_code == 303
        assert (await get_report(client, setup))["month"]["quota"]["usd"] == "12.50"
        await client.post(
            f"/organizations/{setup.id}/settings",
            data={"name": "Report Co", "monthly_usage_quota_usd": "", "has_quota_field": "true"},
        )
        assert (await get_report(client, setup))["month"]["quota"] is None
        bad = await client.post(
            f"/organizations/{setup.id}/settings",
            data={"name": "Report Co", "monthly_usage_quota_usd": "lots", "has_quota_field": "true"},
        )
        assert bad.status_code == 303 and "error=" in bad.headers["location"]


def month_tokens(events: list[dict[str, Any]], t: date) -> int:
    """This month's tokens (input + output as the tokens card counts them), from the raw events."""
    return sum(t_in(e) + t_out(e) for e in events if t.replace(day=1) <= day_of(e) <= t)


async def test_token_quota_drives_the_quota_view(
    factory: Factory, seeded: tuple[OrgSetup, list[dict[str, Any]], dict[Any, str]]
) -> None:
    setup, raw, _ = seeded
    t = today()
    used = month_tokens(raw, t)
    assert used > 0, "the seed must leave tokens this month"
    days_in_month = calendar.monthrange(t.year, t.month)[1]
    projected = half_even(used * days_in_month, t.day)
    settings = f"/api/v1/organizations/{setup.id}/settings"
    page_url = f"/organizations/{setup.id}/usage"

    def quota_text(quota: int) -> str:
        return f"{used:,} / {quota:,} tokens ({used / quota * 100:.0f}%)"

    async with await factory.client_for(setup.users[Role.admin]) as client:
        # Under the quota: tokens used / the quota and the percent, the month-end projection against it.
        quota = 2 * used + 1
        r = await client.patch(settings, json={"monthly_usage_quota_tokens": quota})
        assert r.status_code == 200, r.text
        for period in ("week", "all"):  # the month view is the month's whatever the period
            report = await get_report(client, setup, period=period)
            check_month(report["month"], raw, t, quota_tokens=quota)
            assert report["month"]["quota"] is None  # the USD quota stays unset
        html = (await client.get(page_url, headers={"accept": "text/html"})).text
        assert f'<span class="quota" data-value="quota-tokens">{quota_text(quota)}</span>' in html
        assert f"projected {projected:,} tokens ({projected / quota * 100:.0f}%) at month end" in html
        assert f'data-value="projection-tokens">{projected:,} tokens<' in html
        assert f'data-value="daily-average-tokens">{half_even(used, t.day):,} tokens<' in html
        assert 'class="meter " role="meter" aria-label="Token quota used"' in html
        assert "none set" not in html and "Quota used" not in html  # no USD quota: no USD meter

        # Only my usage: the organization's quota is compared with everyone's usage, not one user's.
        mine = await get_report(client, setup, mine="true")
        admin_events = [e for e in raw if e["user_id"] == setup.users[Role.admin].id]
        check_month(mine["month"], admin_events, t, quota_tokens=None)
        html = (await client.get(page_url, params={"mine": "true"}, headers={"accept": "text/html"})).text
        assert "the organization's quota is compared with everyone's usage" in html
        assert 'data-value="quota-tokens"' not in html

        # Both quotas: both shown. Over the token quota: over 100%, in the warning colour, the bar full.
        over = max(1, used // 3)
        r = await client.patch(
            settings, json={"monthly_usage_quota_tokens": over, "monthly_usage_quota_nanousd": 5 * 10**9}
        )
        assert r.status_code == 200, r.text
        month = (await get_report(client, setup))["month"]
        check_month(month, raw, t, quota_tokens=over)
        assert month["quota_tokens_used"] > 1 and month["quota"]["usd"] == "5.00"
        html = (await client.get(page_url, headers={"accept": "text/html"})).text
        assert f'<span class="quota over" data-value="quota-tokens">{quota_text(over)}</span>' in html
        assert "of $5.00" in html
        assert (
            'class="meter over" role="meter" aria-label="Token quota used" aria-valuemin="0" '
            'aria-valuemax="100" aria-valuenow="100"'
        ) in html

        # Neither: the view says so.
        await client.patch(
            settings, json={"monthly_usage_quota_tokens": None, "monthly_usage_quota_nanousd": None}
        )
        month = (await get_report(client, setup))["month"]
        check_month(month, raw, t, quota_tokens=None)
        html = (await client.get(page_url, headers={"accept": "text/html"})).text
        assert "none set" in html and 'data-value="quota-tokens"' not in html and 'role="meter"' not in html
        await client.patch(settings, json={"monthly_usage_quota_tokens": quota})

    # Members see only their own usage: no organization quota, whatever they ask.
    member = setup.users[Role.member]
    async with await factory.client_for(member) as client:
        for mine_param in ("false", "true"):
            month = (await get_report(client, setup, mine=mine_param))["month"]
            check_month(month, [e for e in raw if e["user_id"] == member.id], t, quota_tokens=None)
        html = (await client.get(page_url, headers={"accept": "text/html"})).text
        assert 'data-value="quota-tokens"' not in html


async def test_overview_billing_card(
    factory: Factory, seeded: tuple[OrgSetup, list[dict[str, Any]], dict[Any, str]]
) -> None:
    setup, raw, _ = seeded
    for role in (Role.owner, Role.member):
        user = setup.users[role]
        async with await factory.client_for(user) as client:
            body = (await client.get(f"/api/v1/organizations/{setup.id}/overview")).json()
            page = await client.get(f"/organizations/{setup.id}/overview", headers={"accept": "text/html"})
        scoped = [e for e in raw if role == Role.owner or e["user_id"] == user.id]
        billing = body["current_billing"]
        check_month(billing, scoped, today())
        assert billing["only_mine"] is (role == Role.member)
        assert billing["cost"]["display"] in page.text
        assert f'data-trend="{billing["direction"]}"' in page.text
        assert billing["last_month_total"]["display"] in page.text
        assert 'data-live-url="/api/v1/organizations/' in page.text


async def test_the_ingest_api_tells_open_pages(factory: Factory, app: Any) -> None:
    setup = await factory.org_with_roles("Live Co")
    await factory.run(lambda s: catalog.sync(s, provider_ids=["openai"]))
    app.state.catalog_cache.invalidate()
    event = {"id": "live-1", "timestamp": datetime.now(UTC).isoformat(), "model": "openai/gpt-4o"}
    with app.state.live_hub.subscribe(setup.id) as subscription:
        async with await factory.client_for(setup.users[Role.admin]) as client:
            r = await client.post(
                f"/api/v1/organizations/{setup.id}/usage/events",
                json={"events": [event | {"cost_nanousd": 4_200}]},
            )
            assert r.status_code == 200, r.text
            message = await subscription.next(within=5)
            assert message is not None and message.event == "usage"
            assert (message.data["requests"], message.data["cost_nanousd"]) == (1, 4_200)
            # A retry records nothing and tells nobody.
            await client.post(
                f"/api/v1/organizations/{setup.id}/usage/events",
                json={"events": [event | {"cost_nanousd": 4_200}]},
            )
            assert await subscription.next(within=0.5) is None
