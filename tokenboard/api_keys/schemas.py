from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tokenboard.kit.money import MoneyOut


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


class ApiKeyCreate(Schema):
    workspace_id: uuid.UUID
    name: str = Field(min_length=1, max_length=100)
    allowed_models: list[str] | None = Field(
        default=None, max_length=200, description="Restrict the key to these provider/model ids."
    )
    spend_limit_nanousd: int | None = Field(
        default=None, gt=0, le=10**18, description="The key's own spend limit."
    )


class ApiKey(Schema):
    id: uuid.UUID
    name: str
    key_hint: str
    workspace_id: uuid.UUID
    workspace_name: str
    user_id: uuid.UUID
    user_email: str
    allowed_models: list[str] | None
    spend_limit: MoneyOut | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The secret (tb_…). Shown only in this response; store it now.")
