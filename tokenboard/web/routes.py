"""All HTML pages, gathered from one module per area in :mod:`tokenboard.web.pages`."""

from __future__ import annotations

from fastapi import APIRouter

from tokenboard.web.pages import (
    accounts,
    billing,
    keys,
    members,
    model_access,
    organizations,
    teams,
    usage,
    workspaces,
)

router = APIRouter()
for _pages in (accounts, organizations, members, teams, workspaces, keys, model_access, usage, billing):
    router.include_router(_pages.router)
