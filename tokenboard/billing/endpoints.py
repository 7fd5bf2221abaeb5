"""REST API for billing: owners and billing managers change it, admins read it, operators record money.

Every page under /organizations/{org_id}/billing, /subscription and /invoices has its twin here.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import Response

from tokenboard.accounts.auth import OperatorPrincipal
from tokenboard.audit.service import Actor
from tokenboard.billing import repository, schemas
from tokenboard.billing.credits import credits
from tokenboard.billing.invoices import invoices
from tokenboard.billing.payments import apply_payment, record_payment_failure
from tokenboard.billing.pdf import render_invoice
from tokenboard.billing.plans import Frequency
from tokenboard.billing.service import billing
from tokenboard.billing.subscriptions import subscriptions
from tokenboard.config import Settings
from tokenboard.kit.deps import DB, AppSettings, Client
from tokenboard.kit.errors import BadRequest, NotFound, PermissionDenied
from tokenboard.kit.money import parse_usd
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext, require_org

router = make_router(prefix="/api/v1/organizations/{org_id}/billing", tags=["billing"])
admin_router = make_router(
    prefix="/api/v1/admin/organizations/{org_id}/billing", tags=["billing (operators)"]
)

Viewer = Annotated[OrgContext, Depends(require_org(Permission.billing_view))]
Manager = Annotated[OrgContext, Depends(require_org(Permission.billing_manage))]
SeatManager = Annotated[OrgContext, Depends(require_org(Permission.seats_manage))]


MAX_AMOUNT_NANOUSD = 10**18  # a billion USD: anything above is a typing error (and overflows BIGINT soon)


def usd(text: str, what: str = "amount") -> int:
    try:
        value = parse_usd(text)
    except (ValueError, ArithmeticError) as exc:
        raise BadRequest(f"The {what} must be an amount in USD, such as 25 or 12.50.") from exc
    if abs(value) > MAX_AMOUNT_NANOUSD:
        raise BadRequest(f"The {what} is too large.")
    return value


def optional_usd(text: str | None, what: str) -> tuple[int | None, bool]:
    """(amount, cleared): None leaves the setting, an empty string switches it off."""
    if text is None:
        return None, False
    if not text.strip():
        return None, True
    return usd(text, what), False


def check_self_service(settings: Settings) -> None:
    if not settings.owners_record_payments:
        raise PermissionDenied("Payments are recorded by the operators of this installation.")


@router.get("", response_model=schemas.Billing)
async def get_billing(ctx: Viewer, db: DB, settings: AppSettings) -> object:
    return schemas.Billing.of(await billing.overview(db, ctx.organization, settings))


@router.patch("/profile", response_model=schemas.Profile)
async def update_profile(body: schemas.ProfileUpdate, ctx: Manager, db: DB, settings: AppSettings) -> object:
    threshold, clear_threshold = optional_usd(body.low_balance_threshold_usd, "low-balance threshold")
    below, clear_below = optional_usd(body.auto_topup_below_usd, "top-up level")
    amount, clear_amount = optional_usd(body.auto_topup_amount_usd, "top-up amount")
    clear = {
        name
        for name, flag in (
            ("low_balance_threshold_nanousd", clear_threshold),
            ("auto_topup_below_nanousd", clear_below),
            ("auto_topup_amount_nanousd", clear_amount),
        )
        if flag
    }
    profile = await billing.update_profile(
        db,
        ctx.organization_id,
        actor=ctx.actor,
        settings=settings,
        legal_name=body.legal_name,
        billing_email=body.billing_email,
        address=body.address,
        country=body.country,
        tax_id=body.tax_id,
        tax_rate_bps=body.tax_rate_bps,
        low_balance_threshold_nanousd=threshold,
        auto_topup_below_nanousd=below,
        auto_topup_amount_nanousd=amount,
        clear=frozenset(clear),
    )
    return schemas.Profile.of(profile)


@router.post("/purchases", response_model=schemas.PurchaseStarted, status_code=201)
async def start_purchase(body: schemas.PurchaseCreate, ctx: Manager, db: DB, settings: AppSettings) -> object:
    started = await credits.start_purchase(
        db, ctx.organization, amount_nanousd=usd(body.amount_usd), settings=settings, actor=ctx.actor
    )
    return schemas.PurchaseStarted(
        purchase=schemas.Purchase.of(started.purchase),
        checkout_url=started.checkout_url,
        instructions=started.instructions,
    )


@router.post("/purchases/{purchase_id}/payments", response_model=schemas.PaymentRecorded)
async def record_own_payment(
    purchase_id: uuid.UUID, body: schemas.PaymentRecord, ctx: Manager, db: DB, settings: AppSettings
) -> object:
    """Offline provider, demos and trials: the owner records the payment (operators always can)."""
    check_self_service(settings)
    applied = await credits.record_offline_payment(
        db, ctx.organization_id, purchase_id, reference=body.reference, actor=ctx.actor
    )
    return schemas.PaymentRecorded(applied=applied)


@router.get("/subscription", response_model=schemas.Subscription)
async def get_subscription(ctx: Viewer, db: DB, settings: AppSettings) -> object:
    return schemas.Subscription.of(await subscriptions.view(db, ctx.organization, settings))


@router.get("/subscription/preview", response_model=schemas.Preview)
async def preview_change(
    ctx: Viewer,
    db: DB,
    settings: AppSettings,
    seats: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    frequency: Annotated[Frequency | None, Query()] = None,
) -> object:
    """What a seat or billing-cycle change would cost, with the arithmetic in words. Changes nothing."""
    if frequency is not None:
        return schemas.Preview.of(
            await subscriptions.preview_frequency(db, ctx.organization, frequency, settings)
        )
    if seats is None:
        raise BadRequest("Ask for seats=N or frequency=monthly|annual.")
    return schemas.Preview.of(await subscriptions.preview_seats(db, ctx.organization, seats, settings))


async def _changed(db: DB, ctx: OrgContext, settings: Settings, result: tuple[object, object]) -> object:
    preview, invoice = result
    view = await subscriptions.view(db, ctx.organization, settings)
    return schemas.ChangeResult(
        preview=schemas.Preview.of(preview),  # type: ignore[arg-type]
        invoice_id=getattr(invoice, "id", None),
        subscription=schemas.Subscription.of(view),
    )


@router.put("/subscription/seats", response_model=schemas.ChangeResult)
async def change_seats(body: schemas.SeatsUpdate, ctx: SeatManager, db: DB, settings: AppSettings) -> object:
    result = await subscriptions.change_seats(
        db, ctx.organization, body.seats, settings=settings, actor=ctx.actor
    )
    return await _changed(db, ctx, settings, result)


@router.put("/subscription/frequency", response_model=schemas.ChangeResult)
async def change_frequency(
    body: schemas.FrequencyUpdate, ctx: Manager, db: DB, settings: AppSettings
) -> object:
    result = await subscriptions.change_frequency(
        db, ctx.organization, body.frequency, settings=settings, actor=ctx.actor
    )
    return await _changed(db, ctx, settings, result)


@router.put("/subscription/renewal", response_model=schemas.Subscription)
async def set_renewal(body: schemas.RenewalUpdate, ctx: Manager, db: DB, settings: AppSettings) -> object:
    await subscriptions.set_renewal(
        db, ctx.organization, auto_renew=body.auto_renew, settings=settings, actor=ctx.actor
    )
    return schemas.Subscription.of(await subscriptions.view(db, ctx.organization, settings))


@router.post("/subscription/cancel", response_model=schemas.Subscription)
async def cancel(body: schemas.CancelRequest, ctx: Manager, db: DB, settings: AppSettings) -> object:
    await subscriptions.cancel(db, ctx.organization, confirm=body.confirm, settings=settings, actor=ctx.actor)
    return schemas.Subscription.of(await subscriptions.view(db, ctx.organization, settings))


@router.post("/subscription/resume", response_model=schemas.Subscription)
async def resume(ctx: Manager, db: DB, settings: AppSettings) -> object:
    await subscriptions.resume(db, ctx.organization, settings=settings, actor=ctx.actor)
    return schemas.Subscription.of(await subscriptions.view(db, ctx.organization, settings))


@router.get("/invoices", response_model=list[schemas.InvoiceOut])
async def list_invoices(ctx: Viewer, db: DB) -> object:
    return [schemas.InvoiceOut.of(i) for i in await invoices.list(db, ctx.organization_id)]


@router.get("/invoices/{invoice_id}", response_model=schemas.InvoiceDetail)
async def get_invoice(invoice_id: uuid.UUID, ctx: Viewer, db: DB) -> object:
    return schemas.InvoiceDetail.of_view(await invoices.get(db, ctx.organization_id, invoice_id))


@router.get(
    "/invoices/{invoice_id}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The invoice as a PDF."}},
)
async def invoice_pdf(invoice_id: uuid.UUID, ctx: Viewer, db: DB, settings: AppSettings) -> Response:
    view = await invoices.get(db, ctx.organization_id, invoice_id)
    body = render_invoice(
        view, issuer_name=settings.invoice_issuer_name, issuer_address=settings.invoice_issuer_address
    )
    name = view.invoice.number or f"draft-{view.invoice.id}"
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
    )


# ------------------------------------------------------------------ operators


async def _org_exists(db: DB, org_id: uuid.UUID) -> None:
    if await repository.get_org(db, org_id) is None:
        raise NotFound("No such organization.")


@admin_router.post("/payments", response_model=schemas.Applied)
async def admin_record_payment(
    org_id: uuid.UUID, body: schemas.AdminPayment, principal: OperatorPrincipal, client: Client, db: DB
) -> object:
    """Record a payment received outside Tokenboard, for an invoice or a credit purchase. Applied once."""
    await _org_exists(db, org_id)
    invoice_id = body.invoice_id
    if body.purchase_id is not None:
        purchase = await repository.get_purchase(db, org_id, body.purchase_id)
        if purchase is None or purchase.invoice_id is None:
            raise NotFound("No such purchase.")
        invoice_id = purchase.invoice_id
    if invoice_id is None:
        raise BadRequest("Name the invoice_id or the purchase_id that was paid.")
    result = await apply_payment(
        db,
        org_id,
        provider="offline",
        event_id=body.reference,
        invoice_id=invoice_id,
        amount_nanousd=usd(body.amount_usd) if body.amount_usd else None,
        provider_reference=body.reference,
        actor=Actor.of(principal.user, client),
    )
    return schemas.Applied(
        applied=result.applied,
        message="Payment applied."
        if result.applied
        else f"Not applied again (payment is {result.payment.status}).",
    )


@admin_router.post("/payment-failures", response_model=schemas.Applied)
async def admin_payment_failure(
    org_id: uuid.UUID,
    body: schemas.AdminPaymentFailure,
    principal: OperatorPrincipal,
    client: Client,
    db: DB,
    settings: AppSettings,
) -> object:
    await _org_exists(db, org_id)
    sub = await record_payment_failure(
        db,
        org_id,
        invoice_id=body.invoice_id,
        reason=body.reason,
        settings=settings,
        actor=Actor.of(principal.user, client),
    )
    return schemas.Applied(
        applied=sub is not None, message=f"Subscription is {sub.status if sub else 'absent'}."
    )


@admin_router.post("/refunds", response_model=schemas.Applied)
async def admin_refund(
    org_id: uuid.UUID,
    body: schemas.AdminRefund,
    principal: OperatorPrincipal,
    client: Client,
    db: DB,
    settings: AppSettings,
) -> object:
    await _org_exists(db, org_id)
    amount = await credits.refund(
        db,
        org_id,
        body.purchase_id,
        amount_nanousd=usd(body.amount_usd),
        reason=body.reason,
        settings=settings,
        actor=Actor.of(principal.user, client),
    )
    return schemas.Applied(applied=amount > 0, message="Refunded; the credits were clawed back.")


@admin_router.post("/adjustments", response_model=schemas.Applied)
async def admin_adjust(
    org_id: uuid.UUID,
    body: schemas.AdminAdjustment,
    principal: OperatorPrincipal,
    client: Client,
    db: DB,
    settings: AppSettings,
) -> object:
    await credits.adjust(
        db,
        org_id,
        amount_nanousd=usd(body.amount_usd),
        reason=body.reason,
        settings=settings,
        actor=Actor.of(principal.user, client),
    )
    return schemas.Applied(applied=True, message="Adjusted.")


@admin_router.post("/promotions", response_model=schemas.Applied)
async def admin_promotion(
    org_id: uuid.UUID, body: schemas.AdminPromotion, principal: OperatorPrincipal, client: Client, db: DB
) -> object:
    if body.expires_at.tzinfo is None:
        raise BadRequest("Give the expiry with a time zone, such as 2026-12-31T23:59:59Z.")
    await credits.grant_promotion(
        db,
        org_id,
        amount_nanousd=usd(body.amount_usd),
        expires_at=body.expires_at,
        reason=body.reason,
        actor=Actor.of(principal.user, client),
    )
    return schemas.Applied(applied=True, message="Promotion granted.")
