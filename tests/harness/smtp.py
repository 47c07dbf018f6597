"""A real SMTP server (aiosmtpd) on a free 127.0.0.1 port, keeping what it accepts, and the alert
settings that point at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from ground.settings import AlertSettings
from massar.stack import free_port

SENDER, OFFICER = "massar@dp-tiznit.men.gov.ma", "officier@dp-tiznit.men.gov.ma"


class Mailbox:
    """aiosmtpd handler keeping every message it accepted."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 OK"

    def bodies(self) -> list[str]:
        return [m.get_body(("plain",)).get_content() for m in self.messages]


@contextmanager
def smtp_server(**controller_options) -> Iterator[tuple[Mailbox, int]]:
    """Yields the mailbox and the port; ``controller_options`` go to aiosmtpd's Controller
    (an authenticator, say)."""
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **controller_options)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def loopback_alerts(port: int, recipients: list[str] | None = None) -> AlertSettings:
    """Alert settings that e-mail the officer(s) through the server on ``port``."""
    return AlertSettings(
        smtp_host="127.0.0.1", smtp_port=port, sender=SENDER, recipients=recipients or [OFFICER]
    )
