"""E-mail for the notifier: one message through the SMTP server of an ``email`` channel
(``smtp://[user@]host:port``, STARTTLS when the server offers it; ``smtps://`` for TLS from the
start; the password is the channel's token), with the standard library's ``smtplib``."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from lakehouse.config.settings import NotifierChannel


def message(channel: NotifierChannel, to: str, subject: str, text: str, key: str) -> EmailMessage:
    """The e-mail: plain UTF-8 text; its ``Message-ID`` derives from ``key`` (what it announces
    to whom), so a copy re-sent after a crash carries the same id and mail clients merge it."""
    mail = EmailMessage()
    mail["From"] = channel.sender
    mail["To"] = to
    mail["Subject"] = subject
    host = channel.sender.rpartition("@")[2] or "smartmarket.local"
    mail["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{host}>"
    mail.set_content(text)
    return mail


def send(channel: NotifierChannel, mail: EmailMessage, timeout: float) -> tuple[bool, bool, str]:
    """Hand ``mail`` to the channel's SMTP server: (delivered, worth retrying, error). A 5xx
    answer (mailbox unknown, relaying denied, …) is final; a 4xx, a refused or broken
    connection and a timeout are worth another try."""
    where = urlsplit(channel.url)
    secure = where.scheme == "smtps"
    port = where.port or (465 if secure else 25)
    try:
        if secure:
            client = smtplib.SMTP_SSL(where.hostname or "", port, timeout=timeout)
        else:
            client = smtplib.SMTP(where.hostname or "", port, timeout=timeout)
        with client:
            if not secure and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
            if where.username:
                client.login(unquote(where.username), channel.token)
            client.send_message(mail)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reason = next(iter(exc.recipients.values()))
        return False, 400 <= code < 500, f"SMTP {code} {_text(reason)}"
    except smtplib.SMTPResponseException as exc:
        code = exc.smtp_code
        return False, 400 <= code < 500, f"SMTP {code} {_text(exc.smtp_error)}"
    except (smtplib.SMTPException, OSError) as exc:
        return False, True, f"{type(exc).__name__}: {exc}"
    return True, False, ""


def _text(reason: bytes | str) -> str:
    return reason.decode(errors="replace") if isinstance(reason, bytes) else reason
