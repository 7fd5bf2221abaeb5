from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tokenboard.models import WorkspaceStatus


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


class WorkspaceCreate(Schema):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=500)


class WorkspaceUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    description: str | None = Field(default=None, max_length=500)


class Workspace(Schema):
    id: uuid.UUID
    name: str
    description: str
    status: WorkspaceStatus
    created_at: datetime
    updated_at: datetime
