"""Billing periods and proration, in integer arithmetic only.

Periods: a monthly period ends on the same day of the next month as the subscription's anchor day (the
day it started), or on that month's last day when it is shorter (anchored on the 31st: 31 Jan -> 28 Feb
(29 in a leap year) -> 31 Mar). An annual period ends on the same date a year later (29 Feb -> 28 Feb).
Period boundaries are whole seconds (UTC).

Proration: a change at moment ``t`` inside a period ``[start, end)`` is charged (or credited) for the whole
seconds left, ``end - t``, out of the period's seconds:

    amount = round_half_even(per_period_amount * seconds_left / period_seconds)

computed exactly on integers (no float, no Decimal) and rounded once, to the nano-USD. A 31-day month is
2,678,400 seconds, February 2,419,200 (2,505,600 in a leap year), a year 31,536,000 (31,622,400 when it
holds 29 February).

Rules (docs/billing.md):
- Adding seats takes effect at once; the added seats are charged for the rest of the period.
- Removing seats takes effect at the next period: nothing is refunded now, the next charge is lower.
- Moving to a longer cycle (monthly -> annual) starts a new annual period at once: the unused part of the
  current period is credited and the new period charged in full. Moving to a shorter cycle takes effect at
  the next period, without proration.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from tokenboard.billing.plans import Frequency
from tokenboard.kit.money import format_usd

SECOND = timedelta(seconds=1)
X = "\N{MULTIPLICATION SIGN}"


def whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def add_months(moment: datetime, months: int, anchor_day: int) -> datetime:
    """``moment`` moved by ``months`` months, on ``anchor_day`` or the month's last day if shorter."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(anchor_day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_end(start: datetime, frequency: Frequency, anchor_day: int | None = None) -> datetime:
    return add_months(start, frequency.months, anchor_day or start.day)


def seconds_between(start: datetime, end: datetime) -> int:
    """Whole seconds from ``start`` to ``end`` (a part of a second left at ``start`` is not counted)."""
    return max((end - start) // SECOND, 0)


def prorate(per_period_nanousd: int, seconds_left: int, period_seconds: int) -> int:
    """``per_period * seconds_left / period_seconds``, rounded half-even to the nano-USD, exactly."""
    if period_seconds <= 0:
        raise ValueError("a period must last at least one second")
    if not 0 <= seconds_left <= period_seconds:
        raise ValueError("the seconds left must lie within the period")
    quotient, remainder = divmod(per_period_nanousd * seconds_left, period_seconds)
    twice = 2 * remainder
    if twice > period_seconds or (twice == period_seconds and quotient % 2 == 1):
        quotient += 1
    return quotient


def describe_duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in ((days, "day"), (hours, "hour")) if n]
    if not parts:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Cycle:
    """The current period of a subscription, and what one whole period costs per seat."""

    start: datetime
    end: datetime
    frequency: Frequency
    seats: int
    price_per_seat_nanousd: int

    @property
    def period_seconds(self) -> int:
        return seconds_between(self.start, self.end)

    def seconds_left(self, at: datetime) -> int:
        if not self.start <= at <= self.end:
            raise ValueError("the change must fall within the current period")
        return seconds_between(at, self.end)


@dataclass(frozen=True, slots=True)
class Preview:
    """What a change costs now and from the next period, with the arithmetic in words."""

    seats_before: int
    seats_after: int
    frequency_before: Frequency
    frequency_after: Frequency
    effective_at: datetime
    charge_now_nanousd: int  # negative: a credit
    seconds_left: int
    period_seconds: int
    next_charge_at: datetime
    next_charge_nanousd: int
    explanation: str


def _date(moment: datetime) -> str:
    return f"{moment:%d %B %Y}".lstrip("0")


def preview_seats(cycle: Cycle, seats: int, at: datetime, *, next_seats: int | None = None) -> Preview:
    """Adding seats: charged now for the rest of the period. Removing: from the next period, no refund."""
    at = whole_second(at)
    left, total = cycle.seconds_left(at), cycle.period_seconds
    price, unit = cycle.price_per_seat_nanousd, cycle.frequency.label
    next_total = seats * price
    if seats > cycle.seats:
        added = seats - cycle.seats
        charge = prorate(added * price, left, total)
        explanation = (
            f"Adding {added} seat{'s' if added != 1 else ''} now: "
            f"{added} {X} {format_usd(price)} per {unit} {X} "
            f"{describe_duration(left)} left of this period of {describe_duration(total)} "
            f"({left:,} of {total:,} seconds) = {format_usd(charge)}, charged today. "
            f"From {_date(cycle.end)} you pay {seats} {X} {format_usd(price)} = "
            f"{format_usd(next_total)} per {unit}."
        )
        return Preview(
            cycle.seats,
            seats,
            cycle.frequency,
            cycle.frequency,
            at,
            charge,
            left,
            total,
            cycle.end,
            next_total,
            explanation,
        )
    if seats < cycle.seats:
        removed = cycle.seats - seats
        explanation = (
            f"Removing {removed} seat{'s' if removed != 1 else ''} takes effect at the next period, on "
            f"{_date(cycle.end)}: nothing is charged or refunded now, and you keep {cycle.seats} seats until "
            f"then. From {_date(cycle.end)} you pay {seats} {X} {format_usd(price)} = "
            f"{format_usd(next_total)} "
            f"per {unit}."
        )
        return Preview(
            cycle.seats,
            seats,
            cycle.frequency,
            cycle.frequency,
            cycle.end,
            0,
            left,
            total,
            cycle.end,
            next_total,
            explanation,
        )
    explanation = f"No change: {seats} seats at {format_usd(price)} per {unit}."
    return Preview(
        cycle.seats,
        seats,
        cycle.frequency,
        cycle.frequency,
        at,
        0,
        left,
        total,
        cycle.end,
        next_total,
        explanation,
    )


def preview_frequency(
    cycle: Cycle, frequency: Frequency, new_price_per_seat_nanousd: int, at: datetime, *, anchor_day: int
) -> Preview:
    """To a longer cycle: a new period now, the unused part credited. To a shorter one: at the next period."""
    at = whole_second(at)
    left, total = cycle.seconds_left(at), cycle.period_seconds
    seats = cycle.seats
    new_total = seats * new_price_per_seat_nanousd
    if frequency == cycle.frequency:
        return Preview(
            seats,
            seats,
            frequency,
            frequency,
            at,
            0,
            left,
            total,
            cycle.end,
            seats * cycle.price_per_seat_nanousd,
            f"No change: you already pay per {frequency.label}.",
        )
    if frequency.months > cycle.frequency.months:
        credit = prorate(seats * cycle.price_per_seat_nanousd, left, total)
        new_end = period_end(at, frequency, at.day)
        charge = new_total - credit
        explanation = (
            f"Switching to {frequency.value} billing now: a new period runs from {_date(at)} to "
            f"{_date(new_end)} at {seats} {X} {format_usd(new_price_per_seat_nanousd)} = "
            f"{format_usd(new_total)}, "
            f"less {format_usd(credit)} for the unused {describe_duration(left)} of the current period "
            f"({left:,} of {total:,} seconds of {seats} {X} {format_usd(cycle.price_per_seat_nanousd)}): "
            f"{format_usd(charge)} charged today."
        )
        return Preview(
            seats, seats, cycle.frequency, frequency, at, charge, left, total, new_end, new_total, explanation
        )
    explanation = (
        f"Switching to {frequency.value} billing takes effect at the next period, on {_date(cycle.end)}: "
        f"nothing changes now. From then you pay {seats} {X} {format_usd(new_price_per_seat_nanousd)} = "
        f"{format_usd(new_total)} per {frequency.label}."
    )
    return Preview(
        seats, seats, cycle.frequency, frequency, cycle.end, 0, left, total, cycle.end, new_total, explanation
    )
