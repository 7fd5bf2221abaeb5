"""The demo organization: members in every role, teams and workspaces, created through the services."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.accounts import repository as accounts_repository
from tokenboard.accounts.service import accounts
from tokenboard.announcements.service import AnnouncementKind, announcements
from tokenboard.api_keys.service import api_keys
from tokenboard.audit.service import Actor, audit
from tokenboard.catalog.service import CatalogCache, catalog
from tokenboard.kit.context import ClientInfo
from tokenboard.kit.db import utcnow
from tokenboard.kit.security import hash_password
from tokenboard.ledger.service import EntryKind, ledger
from tokenboard.members import repository as members_repository
from tokenboard.members.roles import Role
from tokenboard.model_access.service import model_access
from tokenboard.models import Membership, Organization, User
from tokenboard.organizations import repository as org_repository
from tokenboard.organizations.auth import OrgContext
from tokenboard.organizations.service import organizations
from tokenboard.teams.service import teams
from tokenboard.usage import repository as usage_repository
from tokenboard.usage.ingest import record_events
from tokenboard.usage.synthetic import Person, UsageGenerator
from tokenboard.workspaces.service import workspaces

DEMO_PASSWORD = "tokenboard-demo"
DEMO_DOMAIN = "demo.tokenboard.dev"
DEMO_ORG = "Acme AI Lab"
DEMO_KEY_NAME = "demo key"
DEMO_CREDITS_NANOUSD = 25 * 1_000_000_000
DEMO_CLIENT = ClientInfo(ip_address="127.0.0.1", user_agent="tokenboard demo")
# A year of usage; small enough that `make run` stays quick (see docs/usage.md for the timing).
DEMO_EVENTS = 20_000
# A request that names no model gets it: the demo answers one at once (the simulated provider).
DEMO_DEFAULT_MODEL = "simulated/fast"
DEMO_SEED = 7

PEOPLE: list[tuple[str, str, Role, str | None]] = [
    ("Olivia Owner", "owner", Role.owner, "Platform"),
    ("Adam Admin", "admin", Role.admin, "Platform"),
    ("Bella Billing", "billing", Role.billing_manager, "Finance"),
    ("Dev Patel", "dev", Role.member, "Platform"),
    ("Mia Chen", "mia", Role.member, "Data Science"),
    ("Lucas Silva", "lucas", Role.member, "Data Science"),
    ("Sara Novak", "sara", Role.member, "Marketing"),
]
TEAMS = [
    ("Platform", "Core product engineering"),
    ("Data Science", "Models, evaluation and analytics"),
    ("Marketing", "Content and campaigns"),
    ("Finance", "Budgets and invoices"),
]
WORKSPACES: list[tuple[str, str, str | None]] = [
    ("web-app", "Customer-facing assistant in the web app", None),
    ("support-bot", "Tier-1 support answers", None),
    ("code-review", "Automated review comments on pull requests", None),
    ("data-pipeline", "Nightly document enrichment", "suspend"),
    ("legacy-crm", "Old CRM summarizer", "archive"),
]


@dataclass(frozen=True)
class DemoLogin:
    email: str
    role: Role


@dataclass(frozen=True)
class DemoResult:
    organization: Organization
    api_key: str
    logins: list[DemoLogin]
    created: bool


def demo_email(handle: str) -> str:
    return f"{handle}@{DEMO_DOMAIN}"


async def seed_demo(
    session: AsyncSession,
    *,
    events: int = DEMO_EVENTS,
    progress: Callable[[int], None] | None = None,
) -> DemoResult:
    """Create the demo organization with a year of usage, or reset the demo passwords if it is there.

    ``progress`` is called with the number of usage events recorded by each batch.
    """
    await catalog.sync(session)  # the model catalog and its prices, so the demo can price usage
    logins = [DemoLogin(demo_email(handle), role) for _, handle, role, _ in PEOPLE]
    owner = await accounts_repository.get_user_by_email(session, demo_email("owner"))
    if owner is not None and owner.last_organization_id is not None:
        for login in logins:
            user = await accounts_repository.get_user_by_email(session, login.email)
            if user is not None:
                user.password_hash = hash_password(DEMO_PASSWORD)
        org = await org_repository.get(session, owner.last_organization_id)
        if org is not None:
            return DemoResult(org, await _demo_key(session, org, owner), logins, created=False)

    users: dict[str, User] = {}
    for name, handle, _, _ in PEOPLE:
        existing = await accounts_repository.get_user_by_email(session, demo_email(handle))
        users[handle] = existing or await accounts.create_user(
            session, email=demo_email(handle), name=name, password=DEMO_PASSWORD, client=DEMO_CLIENT
        )
    owner = users["owner"]
    org = await organizations.create(
        session, name=DEMO_ORG, owner=owner, actor=Actor.of(owner, DEMO_CLIENT), seat_limit=10
    )
    membership = await members_repository.get_member_by_user(session, org.id, owner.id)
    assert membership is not None
    ctx = OrgContext(organization=org, membership=membership, user=owner, client=DEMO_CLIENT)

    team_ids = {}
    for name, description in TEAMS:
        team_ids[name] = (await teams.create(session, ctx, name=name, description=description)).id
    for _name, handle, role, team in PEOPLE:
        user = users[handle]
        if handle == "owner":
            member = membership
        else:
            member = Membership(organization_id=org.id, user_id=user.id, role=role.value)
            session.add(member)
            await session.flush()
            audit.record(
                session,
                organization_id=org.id,
                actor=ctx.actor,
                action="member.joined",
                target_type="member",
                target_id=member.id,
                target_label=user.email,
                after={"role": role.value},
            )
        if team is not None:
            member.team_id = team_ids[team]
        user.last_organization_id = org.id
    for name, description, action in WORKSPACES:
        workspace = await workspaces.create(session, ctx, name=name, description=description)
        if action:
            await workspaces.transition(session, ctx, workspace.id, action)
    await organizations.update_settings(session, ctx, usage_analytics_enabled=True)
    await model_access.set_default_model(session, ctx, DEMO_DEFAULT_MODEL)
    await announcements.publish(
        session,
        kind=AnnouncementKind.feature,
        title="Welcome to Tokenboard",
        body="Invite your team, create workspaces, and point your tools at the gateway.",
        created_by=None,
    )
    await announcements.publish(
        session,
        kind=AnnouncementKind.maintenance,
        title="Scheduled maintenance window",
        body="Sunday 02:00-02:30 UTC: the dashboard may be slow; the gateway stays up.",
        created_by=None,
    )
    await session.flush()
    active = list(await workspaces.list(session, ctx, "active"))
    rnd = random.Random(DEMO_SEED)
    people = [
        Person(users[handle].id, team_ids.get(team) if team else None, rnd.choice(active).id)
        for _, handle, _, team in PEOPLE
    ]
    await seed_usage(session, org.id, people, events=events, progress=progress)
    quota = await _token_quota(session, org.id)
    if quota is not None:
        await organizations.update_settings(session, ctx, monthly_usage_quota_tokens=quota)
    await ledger.post(
        session,
        org.id,
        kind=EntryKind.grant,
        amount_nanousd=DEMO_CREDITS_NANOUSD,
        memo="demo credits",
        external_id="demo:initial-credits",
    )
    return DemoResult(org, await _demo_key(session, org, owner), logins, created=True)


async def _token_quota(session: AsyncSession, org_id: uuid.UUID) -> int | None:
    """A monthly token quota the demo's usage fits with room to spare: last month's tokens plus a fifth,
    rounded up to two significant digits, so the usage page shows its quota view ("N / M tokens (P%)").
    None when last month had no usage (a demo of a handful of events)."""
    this_month = utcnow().date().replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    rows = await usage_repository.by_day(session, org_id, last_month, this_month - timedelta(days=1))
    tokens = sum(r.input_tokens + r.output_tokens for r in rows)
    if not tokens:
        return None
    target = -(-tokens * 6 // 5)  # a fifth more, rounded up
    step = 10 ** max(len(str(target)) - 2, 0)
    return int(-(-target // step) * step)


async def _demo_key(session: AsyncSession, org: Organization, owner: User) -> str:
    """A fresh gateway key for the demo owner (keys are shown once, so each demo run makes a new one)."""
    membership = await members_repository.get_member_by_user(session, org.id, owner.id)
    assert membership is not None
    ctx = OrgContext(organization=org, membership=membership, user=owner, client=DEMO_CLIENT)
    for row in await api_keys.list(session, ctx):
        if row.key.name == DEMO_KEY_NAME and row.key.revoked_at is None and row.user.id == owner.id:
            await api_keys.revoke(session, ctx, row.key.id)
    workspace = next(w for w in await workspaces.list(session, ctx, "active") if w.name == "web-app")
    new = await api_keys.create(session, ctx, workspace_id=workspace.id, name=DEMO_KEY_NAME)
    return new.secret


async def seed_usage(
    session: AsyncSession,
    organization_id: uuid.UUID,
    people: list[Person],
    *,
    events: int,
    progress: Callable[[int], None] | None = None,
    seed: int = DEMO_SEED,
) -> int:
    """A year of realistic usage through the ingestion pipeline (deterministic for the seed and the day)."""
    cache = CatalogCache()
    await cache.load(session)
    generator = UsageGenerator(organization_id, people, cache, events=events, end=utcnow(), seed=seed)
    recorded = 0
    for batch in generator.batches():
        recorded += len(await record_events(session, batch))
        if progress is not None:
            progress(len(batch))
    return recorded
