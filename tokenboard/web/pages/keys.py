"""Gateway API keys and the quick start. Each page calls the same service as its JSON twin under /api/v1."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Form, Request

from tokenboard.accounts.auth import CurrentPrincipal
from tokenboard.api_keys.service import api_keys
from tokenboard.kit.deps import DB
from tokenboard.kit.errors import TokenboardError
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext
from tokenboard.web.support import org_page, page, redirect
from tokenboard.workspaces.service import workspaces

router = make_router()


async def _keys_page(request: Request, db: DB, principal: Any, ctx: OrgContext, **extra: Any) -> Any:
    return await page(
        request,
        "keys.html",
        db,
        principal,
        ctx=ctx,
        active="keys",
        title="API keys",
        rows=await api_keys.list(db, ctx),
        workspaces=await workspaces.list(db, ctx, "active"),
        gateway_url=str(request.base_url).rstrip("/") + "/v1",
        example_model=_example_model(request, ctx),
        **({"new_key": None} | extra),
    )


def _example_model(request: Request, ctx: OrgContext) -> str:
    """The model the quick start names: the organization's default, else the simulated provider's when this
    gateway has it, else a model of the first provider it has."""
    if ctx.organization.default_model_id:
        return ctx.organization.default_model_id
    providers = list(request.app.state.settings.upstreams)
    if "simulated" in providers or not providers:
        return "simulated/fast"
    for provider, model in _EXAMPLES.items():
        if provider in providers:
            return model
    return f"{providers[0]}/MODEL-NAME"


_EXAMPLES = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "openrouter": "openrouter/openai/gpt-4o-mini",
}


@router.get("/organizations/{org_id}/keys")
async def keys_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.keys_use)],
) -> Any:
    return await _keys_page(request, db, principal, ctx)


@router.post("/organizations/{org_id}/keys")
async def keys_create(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.keys_use)],
    name: Annotated[str, Form(max_length=100)],
    workspace_id: Annotated[str, Form(max_length=64)],
    allowed_models: Annotated[str, Form(max_length=5000)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/keys"
    try:
        workspace = uuid.UUID(workspace_id)
    except ValueError:
        return redirect(here, error="Choose a workspace from the list.")
    models = [m for m in allowed_models.replace(",", " ").split() if m] or None
    try:
        new = await api_keys.create(db, ctx, workspace_id=workspace, name=name, allowed_models=models)
    except TokenboardError as exc:
        if exc.status_code in (403, 404):
            raise
        await db.rollback()
        return redirect(here, error=exc.message)
    # Rendered directly, never redirected: the secret must not land in a URL or browser history.
    return await _keys_page(request, db, principal, ctx, new_key=new.secret, status_code=201)


@router.post("/organizations/{org_id}/keys/{key_id}/revoke")
async def keys_revoke(
    key_id: uuid.UUID, db: DB, ctx: Annotated[OrgContext, org_page(Permission.keys_use)]
) -> Any:
    here = f"/organizations/{ctx.organization_id}/keys"
    await api_keys.revoke(db, ctx, key_id)
    return redirect(here, notice="Key revoked. Requests with it are refused from now on.")
