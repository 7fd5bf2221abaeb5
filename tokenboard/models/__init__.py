"""ORM models, one file per table. Importing this package registers every table on ``Base.metadata``."""

from tokenboard.kit.db import Base
from tokenboard.models.account_event import AccountEvent
from tokenboard.models.announcement import Announcement
from tokenboard.models.api_key import ApiKey
from tokenboard.models.audit_event import AuditEvent
from tokenboard.models.billing_payment import BillingPayment
from tokenboard.models.billing_profile import BillingProfile
from tokenboard.models.catalog_model import CatalogModel
from tokenboard.models.catalog_provider import CatalogProvider
from tokenboard.models.credit_account import CreditAccount
from tokenboard.models.credit_entry import CreditEntry
from tokenboard.models.credit_promotion import CreditPromotion
from tokenboard.models.credit_purchase import CreditPurchase
from tokenboard.models.credit_reservation import CreditReservation
from tokenboard.models.invitation import Invitation
from tokenboard.models.invoice import Invoice
from tokenboard.models.invoice_counter import InvoiceCounter
from tokenboard.models.invoice_line import InvoiceLine
from tokenboard.models.membership import Membership
from tokenboard.models.model_price import ModelPrice
from tokenboard.models.org_model_access import OrgModelAccess
from tokenboard.models.org_provider_access import OrgProviderAccess
from tokenboard.models.organization import Organization
from tokenboard.models.personal_access_token import PersonalAccessToken
from tokenboard.models.subscription import Subscription
from tokenboard.models.subscription_change import SubscriptionChange
from tokenboard.models.team import Team
from tokenboard.models.usage_conversation import UsageConversation
from tokenboard.models.usage_day import UsageDay
from tokenboard.models.usage_day_model import UsageDayModel
from tokenboard.models.usage_day_user import UsageDayUser
from tokenboard.models.usage_day_user_model import UsageDayUserModel
from tokenboard.models.usage_dimension_day import UsageDimensionDay
from tokenboard.models.usage_dimension_user_day import UsageDimensionUserDay
from tokenboard.models.usage_event import UsageEvent
from tokenboard.models.usage_hour import UsageHour
from tokenboard.models.usage_hour_user import UsageHourUser
from tokenboard.models.usage_latency_bucket import UsageLatencyBucket
from tokenboard.models.usage_month import (
    UsageMonthDimension,
    UsageMonthDimensionUser,
    UsageMonthHourCell,
    UsageMonthLatencyBucket,
    UsageMonthModel,
    UsageMonthUser,
    UsageMonthUserHourCell,
    UsageMonthUserModel,
)
from tokenboard.models.user import User
from tokenboard.models.user_session import UserSession
from tokenboard.models.workspace import Workspace, WorkspaceStatus

__all__ = [
    "AccountEvent",
    "Announcement",
    "ApiKey",
    "AuditEvent",
    "Base",
    "BillingPayment",
    "BillingProfile",
    "CatalogModel",
    "CatalogProvider",
    "CreditAccount",
    "CreditEntry",
    "CreditPromotion",
    "CreditPurchase",
    "CreditReservation",
    "Invitation",
    "Invoice",
    "InvoiceCounter",
    "InvoiceLine",
    "Membership",
    "ModelPrice",
    "OrgModelAccess",
    "OrgProviderAccess",
    "Organization",
    "PersonalAccessToken",
    "Subscription",
    "SubscriptionChange",
    "Team",
    "UsageConversation",
    "UsageDay",
    "UsageDayModel",
    "UsageDayUser",
    "UsageDayUserModel",
    "UsageDimensionDay",
    "UsageDimensionUserDay",
    "UsageEvent",
    "UsageHour",
    "UsageHourUser",
    "UsageLatencyBucket",
    "UsageMonthDimension",
    "UsageMonthDimensionUser",
    "UsageMonthHourCell",
    "UsageMonthLatencyBucket",
    "UsageMonthModel",
    "UsageMonthUser",
    "UsageMonthUserHourCell",
    "UsageMonthUserModel",
    "User",
    "UserSession",
    "Workspace",
    "WorkspaceStatus",
]
