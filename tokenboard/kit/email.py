"""Outgoing email: SMTP when configured, otherwise written to the log so a local run still shows links."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from tokenboard.config import Settings

log = logging.getLogger("tokenboard.email")


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    body: str


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent: list[OutgoingEmail] = []

    async def send(self, message: OutgoingEmail) -> None:
        self.sent.append(message)
        if len(self.sent) > 100:
            del self.sent[:50]
        if not self.settings.smtp_host:
            log.warning("email to %s: %s\n%s", message.to, message.subject, message.body)
            return
        await asyncio.to_thread(self._send_smtp, message)

    def _send_smtp(self, message: OutgoingEmail) -> None:
        s = self.settings
        email = EmailMessage()
        email["From"] = s.mail_from
        email["To"] = message.to
        email["Subject"] = message.subject
        email.set_content(message.body)
        assert s.smtp_host is not None
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username and s.smtp_password:
                smtp.login(s.smtp_username, s.smtp_password)
            smtp.send_message(email)
