"""ORM models, one file per table. Importing this package registers every table on ``Base.metadata``."""

from tokenboard.kit.db import Base
from tokenboard.models.account_event import AccountEvent
from tokenboard.models.announcement import Announcement
from tokenboard.models.api_key import ApiKey
from tokenboard.models.audit_event import AuditEvent
from tokenboard.models.catalog_model import CatalogModel
from tokenboard.models.catalog_provider import CatalogProvider
from tokenboard.models.credit_account import CreditAccount
from tokenboard.models.credit_entry import CreditEntry
from tokenboard.models.credit_reservation import CreditReservation
from tokenboard.models.invitation import Invitation
from tokenboard.models.membership import Membership
from tokenboard.models.model_price import ModelPrice
from tokenboard.models.org_model_access import OrgModelAccess
from tokenboard.models.org_provider_access import OrgProviderAccess
from tokenboard.models.organization import Organization
from tokenboard.models.personal_access_token import PersonalAccessToken
from tokenboard.models.team import Team
from tokenboard.models.usage_event import UsageEvent
from tokenboard.models.user import User
from tokenboard.models.user_session import UserSession
from tokenboard.models.workspace import Workspace, WorkspaceStatus

__all__ = [
    "AccountEvent",
    "Announcement",
    "ApiKey",
    "AuditEvent",
    "Base",
    "CatalogModel",
    "CatalogProvider",
    "CreditAccount",
    "CreditEntry",
    "CreditReservation",
    "Invitation",
    "Membership",
    "ModelPrice",
    "OrgModelAccess",
    "OrgProviderAccess",
    "Organization",
    "PersonalAccessToken",
    "Team",
    "UsageEvent",
    "User",
    "UserSession",
    "Workspace",
    "WorkspaceStatus",
]
