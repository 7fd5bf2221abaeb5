"""The latency percentiles read from the histograms, and a range's days cut at month ends."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.factories import Factory
from tokenboard.models import UsageLatencyBucket
from tokenboard.usage import repository
from tokenboard.usage.repository import month_cuts, percentiles
from tokenboard.usage.rollups import OVERFLOW_BUCKET, bucket_reading


def nearest_rank(buckets: list[int], p: float) -> int:
    ordered = sorted(buckets)
    return ordered[math.ceil(len(ordered) * p) - 1]


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=300))
def test_percentiles_are_the_nearest_rank_of_the_requests_in_bucket_order(buckets: list[int]) -> None:
    histogram: dict[int, int] = {}
    for bucket in buckets:
        histogram[bucket] = histogram.get(bucket, 0) + 1
    expected = (bucket_reading(nearest_rank(buckets, 0.50)), bucket_reading(nearest_rank(buckets, 0.95)))
    assert percentiles(histogram) == expected


async def test_model_latency_reads_the_nearest_rank_from_the_stored_histograms(
    factory: Factory, db: AsyncSession
) -> None:
    """Through the database on both engines: each model's buckets over two days of two months, summed and
    read (``model_latency``); checked against sorting the requests."""
    setup = await factory.org_with_roles("Latency Co")
    rnd = random.Random(20261207)
    cases: dict[str, list[int]] = {
        "one-request": [7],
        "two-buckets-even": [3] * 10 + [9] * 10,  # p50 exactly at the end of the first bucket
        "p95-at-a-boundary": [1] * 19 + [30],  # the 19th of 20 requests is p95
        "p95-just-past": [1] * 18 + [30] * 2,
        "overflow": [OVERFLOW_BUCKET] * 3 + [0],
    }
    for i in range(40):
        cases[f"random-{i}"] = [rnd.randint(0, OVERFLOW_BUCKET) for _ in range(rnd.randint(1, 300))]
    # Requests alternate between two days in different months: the read adds the two months' parts up.
    days = (date(2026, 1, 31), date(2026, 2, 1))
    rows: dict[tuple[str, int, date], int] = {}
    for model, buckets in cases.items():
        for n, bucket in enumerate(buckets):
            key = (model, bucket, days[n % 2])
            rows[key] = rows.get(key, 0) + 1
    db.add_all(
        UsageLatencyBucket(
            organization_id=setup.id,
            month=day.replace(day=1),
            model_id=model,
            bucket=bucket,
            day=day,
            requests=requests,
        )
        for (model, bucket, day), requests in rows.items()
    )
    await db.flush()
    found = await repository.model_latency(db, setup.id, days[0], days[1])
    assert found == {
        model: (bucket_reading(nearest_rank(b, 0.50)), bucket_reading(nearest_rank(b, 0.95)))
        for model, b in cases.items()
    }
    assert found["one-request"] == (bucket_reading(7), bucket_reading(7))
    assert found["two-buckets-even"][0] == bucket_reading(3)


@given(st.dates(date(2020, 1, 1), date(2030, 12, 31)), st.integers(min_value=0, max_value=800))
def test_month_cuts_cover_the_days_once_each_inside_its_month(first: date, length: int) -> None:
    last = first + timedelta(days=length)
    cuts = month_cuts(first, last)
    days = [lo + timedelta(days=i) for _, lo, hi in cuts for i in range((hi - lo).days + 1)]
    assert days == [first + timedelta(days=i) for i in range(length + 1)]
    for month, lo, hi in cuts:
        assert month.day == 1 and lo.replace(day=1) == month == hi.replace(day=1) and lo <= hi
    assert len(cuts) == (last.year - first.year) * 12 + last.month - first.month + 1
