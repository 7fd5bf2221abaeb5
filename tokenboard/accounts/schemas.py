from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


class SignupCreate(Schema):
    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=512)


class LoginCreate(Schema):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=512)


class User(Schema):
    id: uuid.UUID
    email: str
    name: str
    is_operator: bool
    created_at: datetime
    last_active_at: datetime | None


class OrganizationMembership(Schema):
    id: uuid.UUID
    name: str
    role: str


class Me(Schema):
    user: User
    organizations: list[OrganizationMembership]


class ProfileUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: EmailStr | None = None


class PasswordChange(Schema):
    current_password: str = Field(min_length=1, max_length=512)
    new_password: str = Field(min_length=1, max_length=512)


class PasswordChanged(Schema):
    sessions_ended: int


class TokenCreate(Schema):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class Token(Schema):
    id: uuid.UUID
    name: str
    token_hint: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(Token):
    token: str = Field(description="The secret. Shown only in this response; store it now.")


class AccountEvent(Schema):
    id: uuid.UUID
    action: str
    created_at: datetime
    ip_address: str | None
    user_agent: str | None
    data: dict[str, Any] | None
