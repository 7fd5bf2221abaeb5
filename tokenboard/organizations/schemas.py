from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tokenboard.organizations.service import MAX_QUOTA_TOKENS
from tokenboard.usage.schemas import MonthCard


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


class OrganizationCreate(Schema):
    name: str = Field(min_length=1, max_length=200)


class Organization(Schema):
    id: uuid.UUID
    name: str
    created_at: datetime
    seat_limit: int
    plan: str


class OrganizationSummary(Schema):
    id: uuid.UUID
    name: str
    role: str


class OrganizationSettings(Schema):
    name: str
    opt_out_training_providers: bool = Field(description="Refuse providers that train on prompts.")
    usage_analytics_enabled: bool = Field(
        description="Record each request's attribution (feature, tool, integration, conversation and message "
        "ids) and attachments. Off: the gateway records only what billing needs (member, model, tokens, "
        "cost, status)."
    )
    monthly_usage_quota_nanousd: int | None = Field(
        description="Usage included each calendar month (UTC), in nano-USD; null when no quota is set."
    )
    monthly_usage_quota_tokens: int | None = Field(
        description="Tokens included each calendar month (UTC), input + output as the usage page counts "
        "them; null when no token quota is set."
    )


class OrganizationSettingsUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    opt_out_training_providers: bool | None = None
    usage_analytics_enabled: bool | None = None
    monthly_usage_quota_nanousd: int | None = Field(
        default=None, ge=0, le=10**18, description="null removes the quota."
    )
    monthly_usage_quota_tokens: int | None = Field(
        default=None,
        strict=True,  # a count of tokens: 1.0, "100" or true are typing errors, not 1 and 100
        ge=1,
        le=MAX_QUOTA_TOKENS,
        description="A whole number of tokens, at least 1; null removes the token quota.",
    )


class SeatsUpdate(Schema):
    seat_limit: int = Field(ge=1, le=100_000)


class AuditEvent(Schema):
    id: uuid.UUID
    created_at: datetime
    actor_label: str
    action: str
    target_type: str
    target_id: str | None
    target_label: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ip_address: str | None


class AuditEventPage(Schema):
    items: list[AuditEvent]
    next_cursor: str | None


class Announcement(Schema):
    id: uuid.UUID
    kind: str
    title: str
    body: str
    published_at: datetime


class OrganizationCard(Schema):
    id: uuid.UUID
    name: str
    owner_name: str | None
    owner_email: str | None
    created_at: datetime
    team_size: int


class WorkspacesCard(Schema):
    total: int
    active: int
    suspended: int
    others: int


class MembersCard(Schema):
    seats_used: int
    seat_limit: int
    seats_label: str = Field(description='For example "8 of 10".')
    roles: dict[str, int]


class CurrentBilling(MonthCard):
    """This month's spend against last month (green when down, red when up) and last month's total."""

    only_mine: bool = Field(description="True for roles that see only their own usage.")


class Overview(Schema):
    organization: OrganizationCard
    workspaces: WorkspacesCard
    members: MembersCard
    recent_activity: AuditEventPage | None = Field(description="Absent for roles without audit access.")
    announcements: list[Announcement]
    your_role: str
    current_billing: CurrentBilling
