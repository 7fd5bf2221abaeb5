from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenboard.kit.money import (
    NANO_PER_USD,
    format_usd,
    money,
    nanousd_from_scaled,
    parse_usd,
    to_nanousd,
    to_usd,
    usd_string,
)


def test_rounding_is_half_even_once() -> None:
    assert to_nanousd(Decimal("0.0000000005")) == 0
    assert to_nanousd(Decimal("0.0000000015")) == 2
    assert to_nanousd(Decimal("0.0000000025")) == 2
    assert to_nanousd(Decimal("1.23")) == 1_230_000_000


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        to_nanousd(0.1)  # type: ignore[arg-type]


def test_display() -> None:
    assert format_usd(0) == "$0.00"
    assert format_usd(1_234_500_000_000) == "$1,234.50"
    assert format_usd(123_456) == "$0.00012"
    assert format_usd(1_500) == "$0.000002"
    assert format_usd(-2_500_000_000) == "-$2.50"
    assert usd_string(123_456) == "0.000123456"
    assert usd_string(5 * NANO_PER_USD) == "5.00"
    assert money(1_000_000) == {"nanousd": 1_000_000, "usd": "0.001"}


def test_parse() -> None:
    assert parse_usd("$12.50") == 12_500_000_000
    for bad in ("abc", "NaN", "Infinity", ""):
        with pytest.raises(ValueError):
            parse_usd(bad)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_string_round_trip_is_exact(nanousd: int) -> None:
    assert to_nanousd(to_usd(nanousd)) == nanousd
    assert parse_usd(usd_string(nanousd)) == nanousd


@given(st.integers(min_value=0, max_value=10**40), st.integers(min_value=0, max_value=40))
def test_integer_rounding_is_to_nanousd(scaled: int, decimals: int) -> None:
    with localcontext() as ctx:
        ctx.prec = 100  # as compute_cost does: no rounding before the one to nano-USD
        expected = to_nanousd(Decimal(scaled).scaleb(-decimals))
    assert nanousd_from_scaled(scaled, decimals) == expected


def test_integer_rounding_ties_go_to_even() -> None:
    assert [nanousd_from_scaled(n, 10) for n in (5, 15, 25, 35, 14, 16)] == [0, 2, 2, 4, 1, 2]


def _decimal_usd_string(nanousd: int) -> str:  # what usd_string computes in integers, in Decimal
    with localcontext() as ctx:
        ctx.prec = 100
        text = f"{(Decimal(nanousd) / NANO_PER_USD).quantize(Decimal('0.000000001')):f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _decimal_format_usd(nanousd: int) -> str:  # the same for format_usd
    with localcontext() as ctx:
        ctx.prec = 100
        value = Decimal(abs(nanousd)) / NANO_PER_USD
        decimals = min(6, max(2, -value.adjusted() + 1)) if value != 0 and value < 1 else 2
        rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    return f"{'-' if nanousd < 0 else ''}${rounded:,.{decimals}f}"


@given(
    st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30),
        st.integers(min_value=-(10**10), max_value=10**10),
        st.sampled_from([0, 1, -1, 5_000, 15_000, 25_000, 995_000_000, 999_999_999, 10**9, 4_995_000]),
    )
)
def test_the_strings_are_the_decimal_definitions_computed_in_integers(nanousd: int) -> None:
    assert usd_string(nanousd) == _decimal_usd_string(nanousd)
    assert format_usd(nanousd) == _decimal_format_usd(nanousd)


def test_display_rounds_half_to_even() -> None:
    assert format_usd(5_000_000) == "$0.0050"  # two significant digits below a dollar
    assert format_usd(1_005_000_000) == "$1.00" and format_usd(1_015_000_000) == "$1.02"
    assert format_usd(12_345) == "$0.000012" and format_usd(12_500) == "$0.000012"
    assert format_usd(13_500) == "$0.000014" and format_usd(-1) == "-$0.000000"
