"""billing

Revision ID: 0009
Revises: 0008
Billing: subscriptions and seat history, credit purchases, payments, promotions, invoices
with gapless numbering per issuer. New tables only; nothing existing is rebuilt.

Create Date: 2026-11-22 03:23:38.244606
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tokenboard.kit.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_counters",
        sa.Column("issuer", sa.String(length=40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "year", name=op.f("pk_invoice_counters")),
    )
    op.create_table(
        "billing_payments",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("provider_reference", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("amount_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("refunded_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("purchase_id", sa.Uuid(), nullable=True),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("period_start", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("period_end", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("memo", sa.String(length=500), nullable=False),
        sa.Column("actor_label", sa.String(length=320), nullable=False),
        sa.Column("created_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_billing_payments_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_billing_payments")),
        sa.UniqueConstraint(
            "organization_id",
            "provider",
            "event_id",
            name=op.f("uq_billing_payments_organization_id_provider_event_id"),
        ),
    )
    op.create_index(
        "ix_billing_payments_org_created", "billing_payments", ["organization_id", "created_at"], unique=False
    )

    op.create_table(
        "billing_profiles",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("billing_email", sa.String(length=320), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("tax_id", sa.String(length=64), nullable=False),
        sa.Column("tax_rate_bps", sa.Integer(), nullable=False),
        sa.Column("low_balance_threshold_nanousd", sa.BigInteger(), nullable=True),
        sa.Column("low_balance_notified", sa.Boolean(), nullable=False),
        sa.Column("auto_topup_below_nanousd", sa.BigInteger(), nullable=True),
        sa.Column("auto_topup_amount_nanousd", sa.BigInteger(), nullable=True),
        sa.Column("provider_customer_id", sa.String(length=200), nullable=True),
        sa.Column("payment_method_provider", sa.String(length=40), nullable=True),
        sa.Column("payment_method_brand", sa.String(length=40), nullable=True),
        sa.Column("payment_method_last4", sa.String(length=4), nullable=True),
        sa.Column("payment_method_exp_month", sa.Integer(), nullable=True),
        sa.Column("payment_method_exp_year", sa.Integer(), nullable=True),
        sa.Column("updated_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_billing_profiles_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_billing_profiles")),
    )
    op.create_table(
        "credit_promotions",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("amount_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("granted_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expired_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expired_nanousd", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("actor_label", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_credit_promotions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_credit_promotions")),
    )
    op.create_index(
        "ix_credit_promotions_expires", "credit_promotions", ["expired_at", "expires_at"], unique=False
    )

    op.create_table(
        "credit_purchases",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("amount_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("provider_reference", sa.String(length=200), nullable=True),
        sa.Column("checkout_url", sa.String(length=2000), nullable=True),
        sa.Column("refunded_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("created_by_label", sa.String(length=320), nullable=False),
        sa.Column("created_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paid_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_credit_purchases_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_credit_purchases")),
    )
    op.create_index(
        "ix_credit_purchases_org_created", "credit_purchases", ["organization_id", "created_at"], unique=False
    )

    op.create_table(
        "invoice_lines",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit_amount_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("amount_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_invoice_lines_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_invoice_lines")),
    )
    op.create_index(
        "ix_invoice_lines_org_invoice", "invoice_lines", ["organization_id", "invoice_id"], unique=False
    )

    op.create_table(
        "invoices",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("tax_rate_bps", sa.Integer(), nullable=False),
        sa.Column("tax_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("total_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("bill_to_name", sa.String(length=200), nullable=False),
        sa.Column("bill_to_email", sa.String(length=320), nullable=False),
        sa.Column("bill_to_address", sa.String(length=500), nullable=False),
        sa.Column("tax_country", sa.String(length=2), nullable=False),
        sa.Column("tax_id", sa.String(length=64), nullable=False),
        sa.Column("period_start", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("period_end", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("due_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("voided_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_invoices_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("issuer", "number", name=op.f("uq_invoices_issuer_number")),
    )
    op.create_index("ix_invoices_org_created", "invoices", ["organization_id", "created_at"], unique=False)

    op.create_table(
        "subscription_changes",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("seats_before", sa.Integer(), nullable=True),
        sa.Column("seats_after", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("amount_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("effective_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("actor_label", sa.String(length=320), nullable=False),
        sa.Column("created_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_subscription_changes_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "id", name=op.f("pk_subscription_changes")),
    )
    op.create_index(
        "ix_subscription_changes_org_created",
        "subscription_changes",
        ["organization_id", "created_at"],
        unique=False,
    )

    op.create_table(
        "subscriptions",
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("plan", sa.String(length=40), nullable=False),
        sa.Column("frequency", sa.String(length=10), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("pending_seats", sa.Integer(), nullable=True),
        sa.Column("pending_frequency", sa.String(length=10), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("canceled_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("anchor_day", sa.Integer(), nullable=False),
        sa.Column("current_period_start", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("current_period_end", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("past_due_since", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("grace_until", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tokenboard.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_subscriptions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_subscriptions")),
    )


def downgrade() -> None:
    for table in (
        "subscriptions",
        "subscription_changes",
        "invoices",
        "invoice_lines",
        "credit_purchases",
        "credit_promotions",
        "billing_profiles",
        "billing_payments",
        "invoice_counters",
    ):
        op.drop_table(table)
