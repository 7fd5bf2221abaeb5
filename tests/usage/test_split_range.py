"""A range of days read as full months (monthly rollups) plus its edge days (daily rollups)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tokenboard.usage.repository import split_range


def days_of(start: date, end: date) -> set[date]:
    return {start + timedelta(days=i) for i in range((end - start).days + 1)}


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 1, 2), date(2026, 1, 30)),
        (date(2026, 1, 15), date(2026, 3, 14)),
        (date(2025, 11, 23), date(2026, 11, 22)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2024, 2, 29), date(2024, 3, 1)),
        (date(2025, 12, 31), date(2026, 1, 1)),
        (date(2026, 3, 1), date(2026, 3, 1)),
    ],
)
def test_months_and_edges_cover_the_range_exactly_once(start: date, end: date) -> None:
    split = split_range(start, end)
    covered: list[date] = []
    if split.months is not None:
        lo, hi = split.months
        assert lo is not None and hi is not None and lo.day == 1 and hi.day == 1 and lo < hi
        month = lo
        while month < hi:
            following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
            covered += sorted(days_of(month, following - timedelta(days=1)))
            month = following
    for lo_day, hi_day in split.edges:
        assert lo_day <= hi_day
        covered += sorted(days_of(lo_day, hi_day))
    assert sorted(covered) == sorted(days_of(start, end))
    assert len(covered) == len(set(covered))


def test_open_ends() -> None:
    assert split_range(None, None).months == (None, None)
    assert split_range(None, None).edges == ()
    assert split_range(date(2026, 1, 10), None).months == (date(2026, 2, 1), None)
    assert split_range(date(2026, 1, 10), None).edges == ((date(2026, 1, 10), date(2026, 1, 31)),)
    assert split_range(None, date(2026, 1, 10)).months == (None, date(2026, 1, 1))
    assert split_range(None, date(2026, 1, 10)).edges == ((date(2026, 1, 1), date(2026, 1, 10)),)
    assert split_range(None, date(2026, 1, 31)).months == (None, date(2026, 2, 1))
    assert split_range(None, date(2026, 1, 31)).edges == ()
