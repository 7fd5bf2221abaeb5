"""REST API for an organization's credits (balance and ledger); purchases come with billing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from tokenboard.kit.deps import DB
from tokenboard.kit.money import money
from tokenboard.kit.routing import make_router
from tokenboard.ledger import schemas
from tokenboard.ledger.service import ledger
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext, require_org

router = make_router(prefix="/api/v1", tags=["credits"])


@router.get("/organizations/{org_id}/credits", response_model=schemas.Credits)
async def get_credits(
    ctx: Annotated[OrgContext, Depends(require_org(Permission.billing_view))], db: DB
) -> object:
    balance = await ledger.balance(db, ctx.organization_id)
    entries = await ledger.entries(db, ctx.organization_id, limit=50)
    return schemas.Credits(
        balance=money(balance.balance_nanousd),
        reserved=money(balance.reserved_nanousd),
        available=money(balance.available_nanousd),
        recent_entries=[
            schemas.CreditEntry(
                id=e.id, kind=e.kind, amount=money(e.amount_nanousd), memo=e.memo, created_at=e.created_at
            )
            for e in entries
        ],
    )
