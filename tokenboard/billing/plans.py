"""Plans as configuration: what each plan costs per seat and what it includes.

The defaults below ship with Tokenboard; an operator replaces them with ``TOKENBOARD_BILLING_PLANS`` (JSON,
plan id -> fields of :class:`PlanConfig`). Prices are USD decimal strings, turned into nano-USD once here.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tokenboard.kit.money import to_nanousd


class Frequency(StrEnum):
    monthly = "monthly"
    annual = "annual"

    @property
    def months(self) -> int:
        return 1 if self is Frequency.monthly else 12

    @property
    def label(self) -> str:
        return "month" if self is Frequency.monthly else "year"


class PlanConfig(BaseModel):
    """One plan. ``usage_in_arrears``: the renewal invoice lists the past period's usage per model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    monthly_price_per_seat: Decimal = Field(description="USD per seat per month.")
    annual_price_per_seat: Decimal | None = Field(
        None, description="USD per seat per year; None: monthly only."
    )
    features: tuple[str, ...] = ()
    usage_in_arrears: bool = False
    self_serve: bool = True

    @field_validator("monthly_price_per_seat", "annual_price_per_seat")
    @classmethod
    def _not_negative(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and (not value.is_finite() or value < 0):
            raise ValueError("a price must be a non-negative amount in USD")
        return value

    def price_per_seat(self, frequency: Frequency) -> int:
        """Nano-USD per seat for one whole period of ``frequency``."""
        if frequency is Frequency.monthly:
            return to_nanousd(self.monthly_price_per_seat)
        if self.annual_price_per_seat is None:
            raise ValueError(f"The {self.name} plan has no annual price.")
        return to_nanousd(self.annual_price_per_seat)

    def frequencies(self) -> list[Frequency]:
        return [Frequency.monthly] + ([Frequency.annual] if self.annual_price_per_seat is not None else [])


DEFAULT_PLANS: dict[str, PlanConfig] = {
    "teams": PlanConfig(
        name="Teams",
        monthly_price_per_seat=Decimal("29"),
        annual_price_per_seat=Decimal("290"),
        features=(
            "Gateway for OpenAI, Anthropic and compatible providers",
            "Usage analytics for every member",
            "Credits shared by the organization",
            "Model access controls",
            "Email support",
        ),
    ),
    "enterprise": PlanConfig(
        name="Enterprise",
        monthly_price_per_seat=Decimal("59"),
        annual_price_per_seat=Decimal("590"),
        features=(
            "Everything in Teams",
            "Usage billed in arrears with a per-model breakdown",
            "Audit logs and custom modes",
            "Invoices with your tax details",
            "Priority support",
        ),
        usage_in_arrears=True,
        self_serve=False,
    ),
}

DEFAULT_PLAN_ID = "teams"
