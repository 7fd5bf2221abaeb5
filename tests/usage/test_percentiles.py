"""The latency percentiles read from a histogram, and a range's days cut at month ends."""

from __future__ import annotations

import math
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tokenboard.usage.repository import month_cuts, percentiles
from tokenboard.usage.rollups import bucket_reading


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=300))
def test_percentiles_are_the_nearest_rank_of_the_requests_in_bucket_order(buckets: list[int]) -> None:
    histogram: dict[int, int] = {}
    for bucket in buckets:
        histogram[bucket] = histogram.get(bucket, 0) + 1
    ordered = sorted(buckets)

    def nearest_rank(p: float) -> int:
        return ordered[math.ceil(len(ordered) * p) - 1]

    assert percentiles(histogram) == (bucket_reading(nearest_rank(0.50)), bucket_reading(nearest_rank(0.95)))


def test_one_request_reads_its_own_bucket_for_both_percentiles() -> None:
    assert percentiles({7: 1}) == (bucket_reading(7), bucket_reading(7))


@given(st.dates(date(2020, 1, 1), date(2030, 12, 31)), st.integers(min_value=0, max_value=800))
def test_month_cuts_cover_the_days_once_each_inside_its_month(first: date, length: int) -> None:
    last = first + timedelta(days=length)
    cuts = month_cuts(first, last)
    days = [lo + timedelta(days=i) for _, lo, hi in cuts for i in range((hi - lo).days + 1)]
    assert days == [first + timedelta(days=i) for i in range(length + 1)]
    for month, lo, hi in cuts:
        assert month.day == 1 and lo.replace(day=1) == month == hi.replace(day=1) and lo <= hi
    assert len(cuts) == (last.year - first.year) * 12 + last.month - first.month + 1
