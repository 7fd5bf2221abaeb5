"""Proration golden tests: exact nano-USD over the exact seconds left, month lengths and leap years."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokenboard.billing.plans import DEFAULT_PLANS, Frequency
from tokenboard.billing.proration import (
    Cycle,
    add_months,
    period_end,
    preview_frequency,
    preview_seats,
    prorate,
    seconds_between,
)

TEAMS_MONTH = 29_000_000_000
TEAMS_YEAR = 290_000_000_000


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def monthly(start: datetime, seats: int = 10) -> Cycle:
    return Cycle(start, period_end(start, Frequency.monthly), Frequency.monthly, seats, TEAMS_MONTH)


def test_plan_prices_come_from_configuration() -> None:
    assert DEFAULT_PLANS["teams"].price_per_seat(Frequency.monthly) == TEAMS_MONTH
    assert DEFAULT_PLANS["teams"].price_per_seat(Frequency.annual) == TEAMS_YEAR


@pytest.mark.parametrize(
    ("start", "end", "seconds"),
    [
        (at(2026, 1, 1), at(2026, 2, 1), 31 * 86_400),
        (at(2026, 4, 1), at(2026, 5, 1), 30 * 86_400),
        (at(2026, 2, 1), at(2026, 3, 1), 28 * 86_400),
        (at(2028, 2, 1), at(2028, 3, 1), 29 * 86_400),  # leap year
    ],
)
def test_month_lengths(start: datetime, end: datetime, seconds: int) -> None:
    assert period_end(start, Frequency.monthly) == end
    assert seconds_between(start, end) == seconds


def test_anchor_day_31_clamps_and_comes_back() -> None:
    assert add_months(at(2026, 1, 31), 1, 31) == at(2026, 2, 28)
    assert add_months(at(2026, 2, 28), 1, 31) == at(2026, 3, 31)
    assert add_months(at(2028, 1, 31), 1, 31) == at(2028, 2, 29)
    assert add_months(at(2026, 12, 31), 1, 31) == at(2027, 1, 31)


def test_annual_periods_and_leap_day() -> None:
    assert period_end(at(2027, 3, 1), Frequency.annual) == at(2028, 3, 1)
    assert seconds_between(at(2027, 3, 1), at(2028, 3, 1)) == 366 * 86_400  # holds 29 Feb 2028
    assert period_end(at(2028, 2, 29), Frequency.annual, 29) == at(2029, 2, 28)


def test_prorate_rounds_half_even_exactly() -> None:
    assert prorate(10, 1, 4) == 2  # 2.5 -> 2
    assert prorate(14, 1, 4) == 4  # 3.5 -> 4
    assert prorate(10, 1, 3) == 3  # 3.33 -> 3
    assert prorate(29_000_000_000, 0, 100) == 0
    assert prorate(29_000_000_000, 100, 100) == 29_000_000_000


def test_mid_cycle_add_in_a_31_day_month() -> None:
    cycle = monthly(at(2026, 3, 1))
    preview = preview_seats(cycle, 12, at(2026, 3, 16, 12, 0, 0))
    left = 15 * 86_400 + 12 * 3_600  # 15.5 days of 31
    assert (preview.seconds_left, preview.period_seconds) == (left, 31 * 86_400)
    # 2 seats x $29 x 1,339,200 / 2,678,400 = $29 exactly
    assert preview.charge_now_nanousd == 29_000_000_000
    assert preview.next_charge_nanousd == 12 * TEAMS_MONTH
    assert "Adding 2 seats now" in preview.explanation and "$29.00" in preview.explanation


def test_mid_cycle_add_in_february_and_in_a_leap_february() -> None:
    plain = preview_seats(monthly(at(2026, 2, 1)), 11, at(2026, 2, 20))
    # 1 x $29 x 9 days / 28 days = 9.3214285714... -> 9.321428571
    assert plain.charge_now_nanousd == 9_321_428_571
    leap = preview_seats(monthly(at(2028, 2, 1)), 11, at(2028, 2, 20))
    # 1 x $29 x 10 days / 29 days = $10 exactly
    assert leap.charge_now_nanousd == 10_000_000_000


def test_add_in_a_30_day_month_with_odd_seconds() -> None:
    preview = preview_seats(monthly(at(2026, 4, 1)), 13, at(2026, 4, 10, 7, 13, 29))
    left = seconds_between(at(2026, 4, 10, 7, 13, 29), at(2026, 5, 1))
    assert left == 1_788_391
    expected_exact = 3 * TEAMS_MONTH * left / (30 * 86_400)  # only to document the value in the test
    assert preview.charge_now_nanousd == 60_027_012_731
    assert abs(preview.charge_now_nanousd - expected_exact) <= 1


def test_removal_takes_effect_next_cycle_without_a_refund() -> None:
    cycle = monthly(at(2026, 1, 31))
    preview = preview_seats(cycle, 7, at(2026, 2, 10))
    assert preview.charge_now_nanousd == 0
    assert preview.effective_at == at(2026, 2, 28) == preview.next_charge_at
    assert preview.next_charge_nanousd == 7 * TEAMS_MONTH
    assert "next period" in preview.explanation


def test_annual_add_over_a_leap_year() -> None:
    cycle = Cycle(at(2027, 6, 1), at(2028, 6, 1), Frequency.annual, 5, TEAMS_YEAR)
    preview = preview_seats(cycle, 6, at(2028, 3, 1))
    # 1 x $290 x 92 days / 366 days = 72.8961748633... -> 72.896174863
    assert preview.seconds_left == 92 * 86_400
    assert preview.period_seconds == 366 * 86_400
    assert preview.charge_now_nanousd == 72_896_174_863


def test_monthly_to_annual_credits_the_unused_month() -> None:
    cycle = monthly(at(2026, 4, 1), seats=10)
    preview = preview_frequency(cycle, Frequency.annual, TEAMS_YEAR, at(2026, 4, 16), anchor_day=1)
    # credit: 10 x $29 x 15/30 = $145; annual: 10 x $290 = $2,900; due now $2,755
    assert preview.charge_now_nanousd == 2_755_000_000_000
    assert preview.next_charge_at == at(2027, 4, 16)
    assert preview.next_charge_nanousd == 2_900_000_000_000
    assert "$145.00" in preview.explanation


def test_annual_to_monthly_waits_for_the_next_period() -> None:
    cycle = Cycle(at(2026, 1, 1), at(2027, 1, 1), Frequency.annual, 4, TEAMS_YEAR)
    preview = preview_frequency(cycle, Frequency.monthly, TEAMS_MONTH, at(2026, 7, 1), anchor_day=1)
    assert preview.charge_now_nanousd == 0
    assert preview.effective_at == at(2027, 1, 1)
    assert preview.next_charge_nanousd == 4 * TEAMS_MONTH
