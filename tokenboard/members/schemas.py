from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from tokenboard.members.roles import Role


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


class Member(Schema):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    email: str
    role: Role
    team_id: uuid.UUID | None
    team_name: str | None
    joined_at: datetime
    last_active_at: datetime | None


class MemberUpdate(Schema):
    role: Role | None = None
    team_id: uuid.UUID | None = Field(
        default=None, description="A team of this organization, or null for none."
    )


class InvitationCreate(Schema):
    email: EmailStr
    role: Role = Role.member


class Invitation(Schema):
    id: uuid.UUID
    email: str
    role: Role
    created_at: datetime
    expires_at: datetime
    last_sent_at: datetime
    send_count: int


class InvitationSent(Invitation):
    link: str = Field(description="The acceptance link, also sent by email. Shown only in this response.")


class InvitationAccept(Schema):
    token: str = Field(min_length=1, max_length=200)


class InvitationPreview(Schema):
    organization_id: uuid.UUID
    organization_name: str
    email: str
    role: Role
    invited_by: str | None
    expires_at: datetime


class Joined(Schema):
    organization_id: uuid.UUID
    member_id: uuid.UUID
    role: Role
