"""The digest e-mail: one multipart/alternative message (text + HTML), sent over SMTP with smtplib.

Building the message is pure; ``send`` is the only network I/O. Credentials come from the environment
(``digest.email.username_env`` / ``password_env``), never from the config file.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .config import EmailSettings, parse_duration
from .errors import EmailError


def build_message(
    email: EmailSettings, *, subject: str, text: str, html: str, when: float | None = None
) -> EmailMessage:
    """A multipart/alternative message: the Markdown digest as text/plain, the digest page as text/html."""
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = email.sender
    msg["To"] = ", ".join(email.to)
    msg["Date"] = formatdate(when, localtime=False)
    msg["Message-ID"] = make_msgid(domain=email.sender.rpartition("@")[2] or "localhost")
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    return msg


def send(email: EmailSettings, msg: EmailMessage) -> list[str]:
    """Deliver ``msg`` to ``email.to`` through ``email.host:port`` (STARTTLS / implicit TLS as configured);
    returns the recipients the server refused (when it accepted at least one: the message went out)."""
    where = f"smtp://{email.host}:{email.port}"
    timeout = parse_duration(email.timeout)
    try:
        context = ssl.create_default_context(cafile=str(email.ca_file) if email.ca_file else None)
        smtp: smtplib.SMTP
        if email.ssl:
            smtp = smtplib.SMTP_SSL(email.host, email.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(email.host, email.port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if email.starttls and not email.ssl:
                smtp.starttls(context=context)
                smtp.ehlo()
            creds = email.credentials()
            if creds is not None:
                smtp.login(*creds)
            refused = smtp.send_message(msg, from_addr=email.sender, to_addrs=list(email.to))
    except (smtplib.SMTPException, OSError) as exc:
        raise EmailError(f"cannot send the digest: {exc}", server=where) from None
    return sorted(refused)
