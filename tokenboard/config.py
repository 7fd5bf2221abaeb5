"""One typed settings class. Every field is read from the environment with the ``TOKENBOARD_`` prefix."""

from __future__ import annotations

import ipaddress
import secrets
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokenboard.billing.plans import DEFAULT_PLAN_ID, DEFAULT_PLANS, PlanConfig


class Environment(StrEnum):
    development = "development"
    testing = "testing"
    production = "production"


def _default_secret() -> str:
    # A development fallback only: production refuses to start without an explicit secret.
    return secrets.token_urlsafe(32)


class UpstreamKind(StrEnum):
    openai = "openai"
    anthropic = "anthropic"
    openrouter = "openrouter"
    openai_compatible = "openai_compatible"
    simulated = "simulated"


DEFAULT_BASE_URLS = {
    UpstreamKind.openai: "https://api.openai.com/v1",
    UpstreamKind.anthropic: "https://api.anthropic.com/v1",
    UpstreamKind.openrouter: "https://openrouter.ai/api/v1",
    UpstreamKind.simulated: "http://simulated.invalid/v1",
}


class UpstreamConfig(BaseModel):
    """One provider the gateway forwards to. Its credentials are only ever sent to ``base_url``."""

    kind: UpstreamKind
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(120.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    latency_scale: float = Field(1.0, ge=0, description="Simulated provider only: 0 answers at once.")

    def api_root(self) -> str:
        url = self.base_url or DEFAULT_BASE_URLS.get(self.kind)
        if not url:
            raise ValueError(f"an upstream of kind {self.kind.value} needs a base_url")
        return url.rstrip("/")


class PaymentProviderKind(StrEnum):
    offline = "offline"
    stripe = "stripe"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENBOARD_", env_file=".env", extra="ignore")

    env: Environment = Field(Environment.development, description="development, testing or production.")
    database_url: str = Field(
        "sqlite+aiosqlite:///./tokenboard.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db.",
    )
    database_echo: bool = Field(False, description="Log every SQL statement.")
    access_log: bool = Field(
        True,
        description="A line per HTTP request on stdout, written once the response has gone out.",
    )
    gc_tuning: bool = Field(
        True, description="Freeze the startup heap and collect old generations less often (kit/runtime.py)."
    )
    redis_url: str | None = Field(None, description="Optional Redis URL shared by several app instances.")
    secret_key: str = Field(
        default_factory=_default_secret, description="Signs CSRF tokens; set in production."
    )
    base_url: str = Field("http://127.0.0.1:8000", description="Public URL, used in links sent by email.")
    host: str = Field("127.0.0.1", description="Address `tokenboard serve` binds to.")
    port: int = Field(8000, description="Port `tokenboard serve` binds to.")
    forwarded_allow_ips: str = Field(
        "",
        description="Proxies (load balancers) whose X-Forwarded-For and X-Forwarded-Proto headers "
        "`tokenboard serve` trusts for the client's address: comma-separated IP addresses or networks "
        "(10.0.0.0/8), or * for any; empty: none (the headers are ignored).",
    )
    session_days: int = Field(14, description="Days a login session lasts without activity.")
    invitation_days: int = Field(7, description="Days an invitation link stays valid.")
    default_seats: int = Field(10, description="Seats a new organization starts with.")
    login_max_failures_per_account: int = Field(5, description="Failed logins per email before throttling.")
    login_max_failures_per_address: int = Field(20, description="Failed logins per IP before throttling.")
    login_window_seconds: int = Field(900, description="Window over which failed logins are counted.")
    smtp_host: str | None = Field(None, description="SMTP server; without it, emails are written to the log.")
    smtp_port: int = Field(587, description="SMTP port.")
    smtp_username: str | None = Field(None, description="SMTP user name.")
    smtp_password: str | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(True, description="Use STARTTLS with the SMTP server.")
    mail_from: str = Field("Tokenboard <noreply@localhost>", description="Sender of outgoing email.")
    max_body_bytes: int = Field(1_048_576, description="Largest request body accepted, in bytes.")
    max_ingest_body_bytes: int = Field(
        4_194_304,
        description="Largest body of a usage ingest batch (POST .../usage/events), in bytes: a batch of "
        "5,000 events of about 470 bytes each is 2.3 MB.",
    )
    upstreams: dict[str, UpstreamConfig] = Field(
        default_factory=lambda: {"simulated": UpstreamConfig(kind=UpstreamKind.simulated)},
        description="Providers the gateway forwards to, as JSON: name -> {kind, base_url, api_key, ...}.",
    )
    gateway_default_max_output_tokens: int = Field(
        4096, ge=1, description="Output tokens reserved for when a request sets no maximum."
    )
    gateway_rate_limit_per_minute: int = Field(600, ge=1, description="Requests per minute per API key.")
    usage_batch_delay_ms: int = Field(
        500, ge=1, le=600_000, description="Longest a usage event waits to be written with others (ms)."
    )
    journal_dir: Path | None = Field(
        None,
        description="Local directory for the usage journal (events survive a killed process until written); "
        "default: beside the SQLite file, else ./var/journal.",
    )
    gateway_credit_lease_nanousd: int = Field(
        2_000_000_000,
        ge=0,
        description="Credits a gateway process reserves per organization at a time, in nano-USD "
        "(default $2); requests are admitted against it in memory.",
    )

    payment_provider: PaymentProviderKind = Field(
        PaymentProviderKind.offline,
        description="Who takes payments: offline (an operator records them) or stripe.",
    )
    stripe_secret_key: SecretStr | None = Field(
        None,
        description="Stripe secret API key (sk_live_... or sk_test_...); required with the stripe provider.",
    )
    stripe_webhook_secret: SecretStr | None = Field(
        None, description="Signing secret of the Stripe webhook endpoint (whsec_...)."
    )
    stripe_api_base: str = Field(
        "https://api.stripe.com", description="Stripe API address (tests point it at a local fake)."
    )
    stripe_webhook_tolerance_seconds: int = Field(
        300, ge=1, le=86_400, description="Oldest webhook signature timestamp accepted, in seconds."
    )
    billing_plans: dict[str, PlanConfig] = Field(
        default_factory=lambda: dict(DEFAULT_PLANS),
        description="Plans as JSON: id -> {name, monthly_price_per_seat, annual_price_per_seat, features, "
        "usage_in_arrears, self_serve} (USD strings); default Teams $29/$290 and Enterprise $59/$590.",
    )
    billing_default_plan: str = Field(DEFAULT_PLAN_ID, description="Plan of a new subscription.")
    billing_grace_days: int = Field(
        7, ge=0, le=90, description="Days of gateway access after a failed payment before suspension."
    )
    credit_bundles_usd: list[int] = Field(
        default_factory=lambda: [10, 50, 100, 500], description="Preset credit bundles offered, in USD."
    )
    credit_purchase_min_usd: Decimal = Field(Decimal("5"), gt=0, description="Smallest custom purchase.")
    credit_purchase_max_usd: Decimal = Field(Decimal("10000"), gt=0, description="Largest custom purchase.")
    invoice_issuer: str = Field(
        "TB", pattern=r"^[A-Z0-9]{1,10}$", description="Invoice number prefix: TB-2026-000001."
    )
    invoice_issuer_name: str = Field("Tokenboard", description="Seller name printed on invoices.")
    invoice_issuer_address: str = Field("", description="Seller address printed on invoices.")
    offline_owner_records_payments: bool | None = Field(
        None,
        description="With the offline provider, owners and billing managers may record their own payments "
        "(demos, trials); default: yes outside production, no in production (operators only).",
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        entries = [item.strip() for item in value.split(",") if item.strip()]
        if "*" in entries:
            if len(entries) > 1:
                raise ValueError("* trusts every proxy: give it alone, or a list of addresses")
            return "*"
        normalized = []
        for entry in entries:
            try:
                # As uvicorn reads them: a network has a slash (host bits cleared here, where uvicorn would
                # silently trust nothing), anything else is one address.
                address: object = (
                    ipaddress.ip_network(entry, strict=False) if "/" in entry else ipaddress.ip_address(entry)
                )
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (such as 10.0.0.5 or 10.0.0.0/8)"
                ) from None
            normalized.append(str(address))
        return ",".join(normalized)

    @property
    def trusted_proxies(self) -> list[str]:
        """The proxies whose forwarded headers set the client's address (``["*"]``: any); empty: none."""
        return self.forwarded_allow_ips.split(",") if self.forwarded_allow_ips else []

    @property
    def owners_record_payments(self) -> bool:
        if self.payment_provider != PaymentProviderKind.offline:
            return False
        if self.offline_owner_records_payments is not None:
            return self.offline_owner_records_payments
        return self.env != Environment.production

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        return self.env == Environment.production

    def journal_path(self) -> Path:
        if self.journal_dir is not None:
            return self.journal_dir
        database = self.sqlite_path()
        if database is not None and database.name != ":memory:":
            return database.with_name(database.name + ".journal")
        return Path("var/journal")

    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        return Path(self.database_url.split("///", 1)[1])


@lru_cache
def get_settings() -> Settings:
    return Settings()
