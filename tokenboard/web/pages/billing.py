"""Billing pages: credits and payments, the subscription and seats, invoices (JSON twins under /api/v1)."""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import Form, Query, Request

from tokenboard.accounts.auth import CurrentPrincipal
from tokenboard.billing.credits import credits
from tokenboard.billing.endpoints import check_self_service, optional_usd, usd
from tokenboard.billing.invoices import invoices
from tokenboard.billing.plans import Frequency
from tokenboard.billing.proration import Preview
from tokenboard.billing.service import billing
from tokenboard.billing.subscriptions import subscriptions
from tokenboard.kit.deps import DB, AppSettings
from tokenboard.kit.errors import BadRequest, TokenboardError
from tokenboard.kit.money import usd_string
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext
from tokenboard.web.support import form_action, org_page, page, redirect

router = make_router()


def _base(ctx: OrgContext) -> str:
    return f"/organizations/{ctx.organization_id}"


@router.get("/organizations/{org_id}/billing")
async def billing_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    settings: AppSettings,
    ctx: Annotated[OrgContext, org_page(Permission.billing_view)],
) -> Any:
    view = await billing.overview(db, ctx.organization, settings)
    profile = view.profile

    def amount(value: int | None) -> str:
        return usd_string(value) if value is not None else ""

    return await page(
        request,
        "billing.html",
        db,
        principal,
        ctx=ctx,
        active="billing",
        title="Billing",
        view=view,
        can_manage=ctx.can(Permission.billing_manage),
        can_record=ctx.can(Permission.billing_manage) and settings.owners_record_payments,
        threshold_usd=amount(profile.low_balance_threshold_nanousd),
        topup_below_usd=amount(profile.auto_topup_below_nanousd),
        topup_amount_usd=amount(profile.auto_topup_amount_nanousd),
    )


@router.post("/organizations/{org_id}/billing/purchases")
async def purchase_submit(
    db: DB,
    settings: AppSettings,
    ctx: Annotated[OrgContext, org_page(Permission.billing_manage)],
    amount_usd: Annotated[str, Form(max_length=20)] = "",
    custom_usd: Annotated[str, Form(max_length=20)] = "",
) -> Any:
    here = f"{_base(ctx)}/billing"
    chosen = custom_usd.strip() or amount_usd.strip()
    if not chosen:
        return redirect(here, error="Choose a bundle or enter an amount.")
    try:
        nanousd = usd(chosen)
        started = await credits.start_purchase(
            db, ctx.organization, amount_nanousd=nanousd, settings=settings, actor=ctx.actor
        )
    except TokenboardError as exc:
        await db.rollback()
        return redirect(here, error=exc.message)
    if started.checkout_url:
        return redirect(started.checkout_url)
    return redirect(
        here,
        notice=f"Purchase of ${usd_string(nanousd)} created and awaiting payment. {started.instructions}",
    )


@router.post("/organizations/{org_id}/billing/purchases/{purchase_id}/payments")
async def record_payment_submit(
    purchase_id: uuid.UUID,
    db: DB,
    settings: AppSettings,
    ctx: Annotated[OrgContext, org_page(Permission.billing_manage)],
    reference: Annotated[str, Form(max_length=200)] = "",
) -> Any:
    check_self_service(settings)
    here = f"{_base(ctx)}/billing"
    return await form_action(
        db,
        lambda: credits.record_offline_payment(
            db, ctx.organization_id, purchase_id, reference=reference, actor=ctx.actor
        ),
        success=here,
        failure=here,
        notice="Payment recorded; the credits are available.",
    )


@router.post("/organizations/{org_id}/billing/profile")
async def profile_submit(
    db: DB,
    settings: AppSettings,
    ctx: Annotated[OrgContext, org_page(Permission.billing_manage)],
    legal_name: Annotated[str, Form(max_length=200)] = "",
    billing_email: Annotated[str, Form(max_length=320)] = "",
    address: Annotated[str, Form(max_length=500)] = "",
    country: Annotated[str, Form(max_length=2)] = "",
    tax_id: Annotated[str, Form(max_length=64)] = "",
    tax_rate_percent: Annotated[str, Form(max_length=10)] = "0",
    low_balance_threshold_usd: Annotated[str, Form(max_length=20)] = "",
    auto_topup_below_usd: Annotated[str, Form(max_length=20)] = "",
    auto_topup_amount_usd: Annotated[str, Form(max_length=20)] = "",
) -> Any:
    here = f"{_base(ctx)}/billing"

    async def save() -> None:
        try:  # a percentage with up to two decimals, to basis points (no float anywhere)
            percent = Decimal(tax_rate_percent.strip() or "0")
            rate = int(percent * 100)
            if not percent.is_finite() or rate != percent * 100:
                raise InvalidOperation
        except InvalidOperation as exc:
            raise BadRequest(
                "The tax rate is a percentage with at most two decimals, such as 19 or 7.5."
            ) from exc
        threshold, clear_threshold = optional_usd(low_balance_threshold_usd, "low-balance threshold")
        below, clear_below = optional_usd(auto_topup_below_usd, "top-up level")
        amount, clear_amount = optional_usd(auto_topup_amount_usd, "top-up amount")
        clear = {
            name
            for name, flag in (
                ("low_balance_threshold_nanousd", clear_threshold),
                ("auto_topup_below_nanousd", clear_below),
                ("auto_topup_amount_nanousd", clear_amount),
            )
            if flag
        }
        await billing.update_profile(
            db,
            ctx.organization_id,
            actor=ctx.actor,
            settings=settings,
            legal_name=legal_name,
            billing_email=billing_email,
            address=address,
            country=country,
            tax_id=tax_id,
            tax_rate_bps=rate,
            low_balance_threshold_nanousd=threshold,
            auto_topup_below_nanousd=below,
            auto_topup_amount_nanousd=amount,
            clear=frozenset(clear),
        )

    return await form_action(db, save, success=here, failure=here, notice="Billing details saved.")


@router.get("/organizations/{org_id}/subscription")
async def subscription_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    settings: AppSettings,
    ctx: Annotated[OrgContext, org_page(Permission.billing_view)],
    seats: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    frequency: Annotated[Frequency | None, Query()] = None,
) -> Any:
    view = await subscriptions.view(db, ctx.organization, settings)
    preview: Preview | None = None
    preview_error = ""
    try:
        if seats is not None and seats != view.subscription.seats:
            preview = await subscriptions.preview_seats(db, ctx.organization, seats, settings)
        elif frequency is not None:
            preview = await subscriptions.preview_frequency(db, ctx.organization, frequency, settings)
    except TokenboardError as exc:
        preview_error = exc.message
    return await page(
        request,
        "subscription.html",
        db,
        principal,
        ctx=ctx,
        active="subscription",
        title="Subscription",
        view=view,
        preview=preview,
        preview_error=preview_error,
        asked_seats=seats,
        asked_frequency=frequency.value if frequency else None,
        can_manage=ctx.can(Permission.billing_manage),
        can_seats=ctx.can(Permission.seats_manage),
        Frequency=Frequency,
    )


@router.post("/organizations/{org_id}/subscription/seats")
async def seats_submit(
    db: DB,
    settings: AppSettings,
    ctx: Annotated[OrgContext, org_page(Permission.seats_manage)],
    seats: Annotated[int, Form(ge=1, le=100_000)],
) -> Any:
    here = f"{_base(ctx)}/subscription"
    return await form_action(
        db,
        lambda: subscriptions.change_seats(db, ctx.organization, seats, settings=settings, actor=ctx.actor),
        success=here,
        failure=here,
        notice=f"Seats set to {seats}.",
    )


@router.post("/organizations/{org_id}/subscription/frequency")
async def frequency_submit(
    db: DB,
    settings: AppSettings,
    ctx: Annotated[OrgContext, org_page(Permission.billing_manage)],
    frequency: Annotated[Frequency, Form()],
) -> Any:
    here = f"{_base(ctx)}/subscription"
    return await form_action(
        db,
        lambda: subscriptions.change_frequency(
            db, ctx.organization, frequency, settings=settings, actor=ctx.actor
        ),
        success=here,
        failure=here,
        notice=f"Billing frequency: {frequency.value}.",
    )


@router.post("/organizations/{org_id}/subscription/renewal")
async def renewal_submit(
    db: DB,
    settings: AppSettings,
    ctx: Annotated[OrgContext, org_page(Permission.billing_manage)],
    auto_renew: Annotated[bool, Form()] = False,
) -> Any:
    here = f"{_base(ctx)}/subscription"
    return await form_action(
        db,
        lambda: subscriptions.set_renewal(
            db, ctx.organization, auto_renew=auto_renew, settings=settings, actor=ctx.actor
        ),
        success=here,
        failure=here,
        notice="Automatic renewal on." if auto_renew else "Automatic renewal off.",
    )


@router.post("/organizations/{org_id}/subscription/cancel")
async def cancel_submit(
    db: DB,
    settings: AppSettings,
    ctx: Annotated[OrgContext, org_page(Permission.billing_manage)],
    confirm: Annotated[bool, Form()] = False,
) -> Any:
    here = f"{_base(ctx)}/subscription"
    return await form_action(
        db,
        lambda: subscriptions.cancel(
            db, ctx.organization, confirm=confirm, settings=settings, actor=ctx.actor
        ),
        success=here,
        failure=here,
        notice="Subscription canceled: it ends at the end of the current period.",
    )


@router.post("/organizations/{org_id}/subscription/resume")
async def resume_submit(
    db: DB, settings: AppSettings, ctx: Annotated[OrgContext, org_page(Permission.billing_manage)]
) -> Any:
    here = f"{_base(ctx)}/subscription"
    return await form_action(
        db,
        lambda: subscriptions.resume(db, ctx.organization, settings=settings, actor=ctx.actor),
        success=here,
        failure=here,
        notice="The subscription renews again.",
    )


@router.get("/organizations/{org_id}/invoices")
async def invoices_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.billing_view)],
) -> Any:
    return await page(
        request,
        "invoices.html",
        db,
        principal,
        ctx=ctx,
        active="billing",
        title="Invoices",
        invoices=await invoices.list(db, ctx.organization_id),
    )
