"""Billing emails (low balance, failed payment, suspension) to the owners and billing managers.

Queued on the session and sent only after its commit, through the app's mailer (or, for the CLI, a mailer
built from the settings: SMTP or the log).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.billing import repository
from tokenboard.config import Settings
from tokenboard.kit.email import Mailer, OutgoingEmail
from tokenboard.kit.jobs import after_commit


def mailer_for(session: AsyncSession, settings: Settings) -> Mailer:
    mailer = getattr(session.info.get("app_state"), "mailer", None)
    return mailer if isinstance(mailer, Mailer) else Mailer(settings)


async def email_billing_contacts(
    session: AsyncSession, org_id: uuid.UUID, settings: Settings, *, subject: str, body: str
) -> list[str]:
    recipients = await repository.billing_recipients(session, org_id)
    profile = await repository.get_profile(session, org_id)
    if profile is not None and profile.billing_email and profile.billing_email not in recipients:
        recipients.append(profile.billing_email)
    mailer = mailer_for(session, settings)

    async def send() -> None:
        for to in recipients:
            await mailer.send(OutgoingEmail(to=to, subject=subject, body=body))

    after_commit(session, send)
    return recipients
