"""Money: every amount is an integer number of nano-USD. The only place prices become amounts.

1 USD = 1_000_000_000 nano-USD. Prices per token are ``Decimal`` USD; a request's cost is computed from
its token counts and rounded once, half-even, by :func:`to_nanousd`. Totals are exact integer sums.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from typing_extensions import TypedDict

NANO_PER_USD = 1_000_000_000
_NANO = Decimal(NANO_PER_USD)


class MoneyOut(TypedDict):
    """How the API shows an amount: the exact integer and a decimal string."""

    nanousd: int
    usd: str


def to_nanousd(usd: Decimal) -> int:
    """Round a USD amount to nano-USD, half-even. Refuses floats: they cannot hold money exactly."""
    if isinstance(usd, float):
        raise TypeError("money must be Decimal, never float")
    return int((usd * _NANO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def nanousd_from_scaled(scaled: int, decimals: int) -> int:
    """Round ``scaled x 10**-decimals`` USD to nano-USD, half-even: :func:`to_nanousd` in integers.

    The gateway prices every request twice (its estimate, then its cost); with prices held as integers
    over a power of ten this is the same rounding without building a ``Decimal`` per request.
    """
    if decimals <= 9:
        factor: int = 10 ** (9 - decimals)
        return scaled * factor
    divisor: int = 10 ** (decimals - 9)
    quotient, remainder = divmod(scaled, divisor)
    twice = 2 * remainder
    if twice > divisor or (twice == divisor and quotient % 2):
        quotient += 1
    return quotient


def parse_usd(text: str) -> int:
    """Parse an operator's or a form's USD amount such as ``"12.50"`` to nano-USD."""
    try:
        value = Decimal(text.strip().lstrip("$"))
    except (InvalidOperation, AttributeError) as exc:
        raise ValueError(f"{text!r} is not an amount in USD") from exc
    if not value.is_finite():
        raise ValueError(f"{text!r} is not an amount in USD")
    return to_nanousd(value)


def to_usd(nanousd: int) -> Decimal:
    return Decimal(nanousd) / _NANO


def usd_string(nanousd: int) -> str:
    """The exact decimal value as a string, with no trailing zeros past two decimals: ``"0.000123"``.

    In integers (a report formats hundreds of amounts; a ``Decimal`` per amount cost ~5 us each).
    """
    whole, nanos = divmod(abs(nanousd), NANO_PER_USD)
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{'-' if nanousd < 0 else ''}{whole}.{fraction:0<2}"


def format_usd(nanousd: int) -> str:
    """For people: at least 2 decimals, up to 6 for small amounts, thousands separated: ``$1,234.50``.

    Below a dollar, enough decimals for the first two significant digits. Rounded half-even, in integers.
    """
    amount = abs(nanousd)
    decimals = 2
    if 0 < amount < NANO_PER_USD:  # the first significant digit is the (10 - digits)-th decimal
        decimals = min(6, max(2, 11 - len(str(amount))))
    step = 10 ** (9 - decimals)
    units, remainder = divmod(amount, step)
    if 2 * remainder > step or (2 * remainder == step and units % 2):
        units += 1
    whole, fraction = divmod(units, 10**decimals)
    return f"{'-' if nanousd < 0 else ''}${whole:,}.{fraction:0{decimals}d}"


def money(nanousd: int) -> MoneyOut:
    return {"nanousd": nanousd, "usd": usd_string(nanousd)}
