"""The one place queries are scoped to an organization. Repositories call it; routes never filter by hand."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import Select

S = TypeVar("S", bound=Select[*tuple[Any, ...]])


def scoped(statement: S, model: Any, organization_id: uuid.UUID) -> S:
    """Restrict a select over a tenant-owned model to one organization."""
    return statement.where(model.organization_id == organization_id)
