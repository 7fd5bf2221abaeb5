"""Billing's API shapes. Amounts go out as ``{nanousd, usd}`` and come in as USD decimal strings."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tokenboard.billing.invoices import InvoiceView
from tokenboard.billing.plans import Frequency
from tokenboard.billing.proration import Preview as ProrationPreview
from tokenboard.billing.service import BillingOverview, HistoryItem
from tokenboard.billing.subscriptions import SubscriptionView
from tokenboard.kit.money import MoneyOut, money
from tokenboard.models import BillingPayment, BillingProfile, CreditPurchase, Invoice, InvoiceLine

Usd = str  # a USD amount such as "25" or "12.50"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PurchaseCreate(_In):
    amount_usd: Usd = Field(max_length=20, description="A bundle (10, 50, 100, 500) or a custom amount.")


class PaymentRecord(_In):
    reference: str = Field("", max_length=200, description="Receipt or transfer reference; applied once.")


class ProfileUpdate(_In):
    legal_name: str | None = Field(None, max_length=200)
    billing_email: str | None = Field(None, max_length=320)
    address: str | None = Field(None, max_length=500)
    country: str | None = Field(None, max_length=2)
    tax_id: str | None = Field(None, max_length=64)
    tax_rate_bps: int | None = Field(None, ge=0, le=10_000)
    low_balance_threshold_usd: Usd | None = Field(None, max_length=20, description="Empty string: off.")
    auto_topup_below_usd: Usd | None = Field(None, max_length=20, description="Empty string: off.")
    auto_topup_amount_usd: Usd | None = Field(None, max_length=20, description="Empty string: off.")


class SeatsUpdate(_In):
    seats: int = Field(ge=1, le=100_000)


class FrequencyUpdate(_In):
    frequency: Frequency


class RenewalUpdate(_In):
    auto_renew: bool


class CancelRequest(_In):
    confirm: bool = Field(description="Must be true: the subscription ends at the end of the period.")


class AdminPayment(_In):
    invoice_id: uuid.UUID | None = None
    purchase_id: uuid.UUID | None = None
    reference: str = Field(min_length=1, max_length=200, description="The payment's id; applied once.")
    amount_usd: Usd | None = Field(None, max_length=20, description="Default: the invoice total.")


class AdminPaymentFailure(_In):
    invoice_id: uuid.UUID
    reason: str = Field(min_length=1, max_length=300)


class AdminRefund(_In):
    purchase_id: uuid.UUID
    amount_usd: Usd = Field(max_length=20)
    reason: str = Field(min_length=1, max_length=300)


class AdminAdjustment(_In):
    amount_usd: Usd = Field(max_length=20, description="Positive adds credits, negative removes.")
    reason: str = Field(min_length=1, max_length=300)


class AdminPromotion(_In):
    amount_usd: Usd = Field(max_length=20)
    expires_at: datetime
    reason: str = Field(min_length=1, max_length=300)


class Purchase(_Out):
    id: uuid.UUID
    amount: MoneyOut
    status: str
    origin: str
    provider: str
    provider_reference: str | None
    checkout_url: str | None
    refunded: MoneyOut
    invoice_id: uuid.UUID | None
    created_at: datetime
    paid_at: datetime | None

    @classmethod
    def of(cls, p: CreditPurchase) -> Purchase:
        return cls(
            id=p.id,
            amount=money(p.amount_nanousd),
            status=p.status,
            origin=p.origin,
            provider=p.provider,
            provider_reference=p.provider_reference,
            checkout_url=p.checkout_url,
            refunded=money(p.refunded_nanousd),
            invoice_id=p.invoice_id,
            created_at=p.created_at,
            paid_at=p.paid_at,
        )


class PurchaseStarted(_Out):
    purchase: Purchase
    checkout_url: str | None
    instructions: str


class PaymentRecorded(_Out):
    applied: bool


class Payment(_Out):
    id: uuid.UUID
    provider: str
    event_id: str
    status: str
    purpose: str
    amount: MoneyOut
    invoice_id: uuid.UUID | None
    period_start: datetime | None
    period_end: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, p: BillingPayment) -> Payment:
        return cls(
            id=p.id,
            provider=p.provider,
            event_id=p.event_id,
            status=p.status,
            purpose=p.purpose,
            amount=money(p.amount_nanousd),
            invoice_id=p.invoice_id,
            period_start=p.period_start,
            period_end=p.period_end,
            created_at=p.created_at,
        )


class Profile(_Out):
    legal_name: str
    billing_email: str
    address: str
    country: str
    tax_id: str
    tax_rate_bps: int
    low_balance_threshold: MoneyOut | None
    auto_topup_below: MoneyOut | None
    auto_topup_amount: MoneyOut | None

    @classmethod
    def of(cls, p: BillingProfile) -> Profile:
        def opt(v: int | None) -> MoneyOut | None:
            return money(v) if v is not None else None

        return cls(
            legal_name=p.legal_name,
            billing_email=p.billing_email,
            address=p.address,
            country=p.country,
            tax_id=p.tax_id,
            tax_rate_bps=p.tax_rate_bps,
            low_balance_threshold=opt(p.low_balance_threshold_nanousd),
            auto_topup_below=opt(p.auto_topup_below_nanousd),
            auto_topup_amount=opt(p.auto_topup_amount_nanousd),
        )


class SubscriptionChange(_Out):
    kind: str
    seats_before: int | None
    seats_after: int | None
    description: str
    amount: MoneyOut
    effective_at: datetime
    actor: str
    created_at: datetime


class Subscription(_Out):
    plan_id: str
    plan_name: str
    features: list[str]
    usage_in_arrears: bool
    frequency: Frequency
    frequencies: list[Frequency]
    seats: int
    members: int
    pending_seats: int | None
    pending_frequency: Frequency | None
    status: str
    auto_renew: bool
    cancel_at_period_end: bool
    current_period_start: datetime
    current_period_end: datetime
    price_per_seat: MoneyOut
    next_charge_at: datetime | None
    next_charge: MoneyOut
    history: list[SubscriptionChange]

    @classmethod
    def of(cls, v: SubscriptionView) -> Subscription:
        s = v.subscription
        return cls(
            plan_id=v.plan_id,
            plan_name=v.plan.name,
            features=list(v.plan.features),
            usage_in_arrears=v.plan.usage_in_arrears,
            frequency=Frequency(s.frequency),
            frequencies=v.plan.frequencies(),
            seats=s.seats,
            members=v.members,
            pending_seats=s.pending_seats,
            pending_frequency=Frequency(s.pending_frequency) if s.pending_frequency else None,
            status=s.status,
            auto_renew=s.auto_renew,
            cancel_at_period_end=s.cancel_at_period_end,
            current_period_start=s.current_period_start,
            current_period_end=s.current_period_end,
            price_per_seat=money(v.price_per_seat_nanousd),
            next_charge_at=v.next_charge_at,
            next_charge=money(v.next_charge_nanousd),
            history=[
                SubscriptionChange(
                    kind=c.kind,
                    seats_before=c.seats_before,
                    seats_after=c.seats_after,
                    description=c.description,
                    amount=money(c.amount_nanousd),
                    effective_at=c.effective_at,
                    actor=c.actor_label,
                    created_at=c.created_at,
                )
                for c in v.history
            ],
        )


class Preview(_Out):
    seats_before: int
    seats_after: int
    frequency_before: Frequency
    frequency_after: Frequency
    effective_at: datetime
    charge_now: MoneyOut
    seconds_left: int
    period_seconds: int
    next_charge_at: datetime
    next_charge: MoneyOut
    explanation: str

    @classmethod
    def of(cls, p: ProrationPreview) -> Preview:
        return cls(
            seats_before=p.seats_before,
            seats_after=p.seats_after,
            frequency_before=p.frequency_before,
            frequency_after=p.frequency_after,
            effective_at=p.effective_at,
            charge_now=money(p.charge_now_nanousd),
            seconds_left=p.seconds_left,
            period_seconds=p.period_seconds,
            next_charge_at=p.next_charge_at,
            next_charge=money(p.next_charge_nanousd),
            explanation=p.explanation,
        )


class ChangeResult(_Out):
    preview: Preview
    invoice_id: uuid.UUID | None
    subscription: Subscription


class InvoiceLineOut(_Out):
    kind: str
    description: str
    quantity: int
    unit_amount: MoneyOut
    amount: MoneyOut
    model_id: str | None

    @classmethod
    def of(cls, line: InvoiceLine) -> InvoiceLineOut:
        return cls(
            kind=line.kind,
            description=line.description,
            quantity=line.quantity,
            unit_amount=money(line.unit_amount_nanousd),
            amount=money(line.amount_nanousd),
            model_id=line.model_id,
        )


class InvoiceOut(_Out):
    id: uuid.UUID
    number: str | None
    status: str
    purpose: str
    currency: str
    subtotal: MoneyOut
    tax_rate_bps: int
    tax: MoneyOut
    total: MoneyOut
    period_start: datetime | None
    period_end: datetime | None
    finalized_at: datetime | None
    due_at: datetime | None
    paid_at: datetime | None
    pdf_url: str

    @classmethod
    def of(cls, i: Invoice) -> InvoiceOut:
        return cls(
            id=i.id,
            number=i.number,
            status=i.status,
            purpose=i.purpose,
            currency=i.currency,
            subtotal=money(i.subtotal_nanousd),
            tax_rate_bps=i.tax_rate_bps,
            tax=money(i.tax_nanousd),
            total=money(i.total_nanousd),
            period_start=i.period_start,
            period_end=i.period_end,
            finalized_at=i.finalized_at,
            due_at=i.due_at,
            paid_at=i.paid_at,
            pdf_url=f"/api/v1/organizations/{i.organization_id}/billing/invoices/{i.id}/pdf",
        )


class InvoiceDetail(InvoiceOut):
    bill_to_name: str
    bill_to_email: str
    bill_to_address: str
    tax_country: str
    tax_id: str
    lines: list[InvoiceLineOut]

    @classmethod
    def of_view(cls, v: InvoiceView) -> InvoiceDetail:
        i = v.invoice
        return cls(
            **InvoiceOut.of(i).model_dump(),
            bill_to_name=i.bill_to_name,
            bill_to_email=i.bill_to_email,
            bill_to_address=i.bill_to_address,
            tax_country=i.tax_country,
            tax_id=i.tax_id,
            lines=[InvoiceLineOut.of(line) for line in v.lines],
        )


class HistoryEntry(_Out):
    at: datetime
    kind: str
    description: str
    amount: MoneyOut
    status: str

    @classmethod
    def of(cls, h: HistoryItem) -> HistoryEntry:
        return cls(
            at=h.at, kind=h.kind, description=h.description, amount=money(h.amount_nanousd), status=h.status
        )


class PaymentMethodOut(_Out):
    brand: str
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    label: str


class Billing(_Out):
    balance: MoneyOut
    reserved: MoneyOut
    available: MoneyOut
    status: str
    provider: str
    payment_method: PaymentMethodOut
    profile: Profile
    subscription: Subscription
    purchases: list[Purchase]
    payments: list[Payment]
    cycles: list[InvoiceOut]
    history: list[HistoryEntry]
    bundles: list[MoneyOut]
    min_purchase: MoneyOut
    max_purchase: MoneyOut

    @classmethod
    def of(cls, o: BillingOverview) -> Billing:
        pm = o.payment_method
        return cls(
            balance=money(o.balance.balance_nanousd),
            reserved=money(o.balance.reserved_nanousd),
            available=money(o.balance.available_nanousd),
            status=o.status,
            provider=o.provider,
            payment_method=PaymentMethodOut(
                brand=pm.brand, last4=pm.last4, exp_month=pm.exp_month, exp_year=pm.exp_year, label=pm.label
            ),
            profile=Profile.of(o.profile),
            subscription=Subscription.of(o.subscription),
            purchases=[Purchase.of(p) for p in o.purchases],
            payments=[Payment.of(p) for p in o.payments],
            cycles=[InvoiceOut.of(i) for i in o.cycles],
            history=[HistoryEntry.of(h) for h in o.history],
            bundles=[money(b) for b in o.bundles_nanousd],
            min_purchase=money(o.min_purchase_nanousd),
            max_purchase=money(o.max_purchase_nanousd),
        )


class Applied(_Out):
    applied: bool
    message: str
