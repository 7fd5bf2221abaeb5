"""Model access: providers, models and the default model (the JSON twin is under /api/v1)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Query, Request

from tokenboard.accounts.auth import CurrentPrincipal
from tokenboard.kit.deps import DB, AppSettings
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.model_access.schemas import ModelAccessPage, ModelAccessQuery
from tokenboard.model_access.service import model_access
from tokenboard.organizations.auth import OrgContext
from tokenboard.web.support import form_action, org_page, page, safe_next

router = make_router()

MODALITIES = ("text", "image", "audio", "video", "embedding")


def _models_page_url(ctx: OrgContext, next_url: str) -> str:
    """Back to the model access page, keeping its filters; never anywhere else."""
    base = f"/organizations/{ctx.organization_id}/models"
    target = safe_next(next_url, base)
    return target if target == base or target.startswith(base + "?") else base


def _with_offset(request: Request, offset: int) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "offset" and v != ""]
    return request.url.path + "?" + urlencode([*params, ("offset", str(offset))])


@router.get("/organizations/{org_id}/models")
async def models_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.models_view)],
    query: Annotated[ModelAccessQuery, Query()],
    settings: AppSettings,
) -> Any:
    result = await model_access.list(
        db, ctx, query.filters(), offset=query.offset, limit=query.limit, reachable=settings.upstreams
    )
    view = ModelAccessPage.of(result)
    end = query.offset + len(view.models)
    return await page(
        request,
        "models.html",
        db,
        principal,
        ctx=ctx,
        active="models",
        title="Model access",
        view=view,
        query=query,
        choices=result.allowed_choices,
        # The filter compares without case: "US" and "us" are one choice.
        locations=sorted(
            {p.headquarters_country.upper() for p in view.providers if p.headquarters_country}
            | {r.upper() for p in view.providers for r in p.regions}
        ),
        modalities=MODALITIES,
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        shown=(query.offset + 1 if view.models else 0, end),
        prev_url=_with_offset(request, max(query.offset - query.limit, 0)) if query.offset else None,
        next_url=_with_offset(request, end) if end < view.total and view.models else None,
    )


@router.post("/organizations/{org_id}/model-access/providers/{provider_id}")
async def provider_access_submit(
    provider_id: str,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.models_manage)],
    enabled: Annotated[bool, Form()],
    settings: AppSettings,
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Any:
    back = _models_page_url(ctx, next)
    return await form_action(
        db,
        lambda: model_access.set_provider(
            db, ctx, provider_id, enabled=enabled, reachable=settings.upstreams
        ),
        success=back,
        failure=back,
        notice=f"{provider_id} {'enabled' if enabled else 'disabled'}. The gateway applies it at once.",
    )


@router.post("/organizations/{org_id}/model-access/models/{model:path}")
async def model_access_submit(
    model: str,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.models_manage)],
    enabled: Annotated[bool, Form()],
    settings: AppSettings,
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Any:
    back = _models_page_url(ctx, next)
    return await form_action(
        db,
        lambda: model_access.set_model(db, ctx, model, enabled=enabled, reachable=settings.upstreams),
        success=back,
        failure=back,
        notice=f"{model} {'enabled' if enabled else 'disabled'}. The gateway applies it at once.",
    )


@router.post("/organizations/{org_id}/model-access/default-model")
async def default_model_submit(
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.models_manage)],
    settings: AppSettings,
    model_id: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Any:
    back = _models_page_url(ctx, next)
    return await form_action(
        db,
        lambda: model_access.set_default_model(db, ctx, model_id or None, reachable=settings.upstreams),
        success=back,
        failure=back,
        notice=f"Default model set to {model_id}." if model_id else "Default model cleared.",
    )
