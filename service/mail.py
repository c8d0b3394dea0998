"""Outbound e-mail for automations' ``email`` actions, through an ``smtp/NAME`` block.

The block (``pushpool.blocks.SMTP``) names the server: ``host``, ``port``, ``username``,
``password`` (a secret), ``use_tls`` and ``from_address``. With ``use_tls`` the session
is encrypted: implicit TLS on port 465 (RFC 8314), STARTTLS on any other port (a server
that does not offer it is a failure, never a fallback to clear text); the certificate
is checked for ``host``. A password is never sent without TLS.

Like ``notify``, a server must be on the admin's list (``automation_smtp_allowlist``:
``host`` or ``host:port``) and its address public unless inside
``automation_allowed_networks``; the address checked is the one connected to (DNS
pinned; TLS still verifies the host name). The standard library's ``smtplib`` runs in
the action worker with a timeout. Failures are :class:`MailFailed` whose message holds
the SMTP reply code at most, never the password or the server's text.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from service.errors import InvalidInput
from service.notify import Resolver, pinned_address, resolve

if TYPE_CHECKING:
    from service.settings import Settings

#: The port whose sessions start in TLS (SMTPS); others use STARTTLS.
IMPLICIT_TLS_PORT = 465


class MailFailed(RuntimeError):
    """Sending failed; the message names the step and the reply code, nothing secret."""


@dataclass(frozen=True)
class Server:
    """An SMTP block's values (``password`` in clear: keep it out of every record)."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    use_tls: bool = True
    from_address: str | None = None

    @classmethod
    def of(cls, values: dict[str, Any]) -> Server:
        return cls(**{k: values[k] for k in cls.__dataclass_fields__ if k in values})

    def sender(self) -> str | None:
        """The From address: ``from_address``, else the username if it is an address."""
        if self.from_address:
            return self.from_address
        return self.username if self.username and "@" in self.username else None


def server_problem(server: Server, settings: Settings) -> str | None:
    """Why ``server`` may not be used (checked at create time and before each send)."""
    if not allowlisted(server, settings):
        return (
            f"{server.host}:{server.port} is not in the admin's allowlist "
            "(PUSHPOOL_AUTOMATION_SMTP_ALLOWLIST)"
        )
    if server.sender() is None:
        return "the block has no from_address (nor a username that is an address)"
    if server.password and not server.use_tls:
        return "the block has a password but use_tls false: it would be sent in clear"
    return None


def allowlisted(server: Server, settings: Settings) -> bool:
    """Whether ``host`` or ``host:port`` is on ``automation_smtp_allowlist``."""
    entries = {e.lower() for e in settings.automation_smtp_allowlist}
    host = server.host.lower()
    return host in entries or f"{host}:{server.port}" in entries


def message(sender: str, to: Sequence[str], subject: str, body: str) -> EmailMessage:
    """The mail; line breaks in the (templated) subject become spaces (no header
    injection)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = " ".join(subject.split())[:900]
    msg.set_content(body)
    return msg


class _Pinned(smtplib.SMTP):
    """``smtplib.SMTP`` connecting to a fixed address while ``_host`` (EHLO, STARTTLS's
    server name and certificate check) stays the block's host name."""

    address: str = ""

    def open(self, address: str, host: str, port: int) -> None:
        """Connect to ``address``; ``host`` is the name TLS checks (``smtplib`` sets
        ``_host`` only in its constructor, which would connect at once)."""
        self.address, self._host = address, host
        self.connect(host, port)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self.address, port), timeout, self.source_address)


class _PinnedSSL(smtplib.SMTP_SSL, _Pinned):
    """Implicit TLS over :class:`_Pinned`'s connection (``SMTP_SSL`` wraps it for the
    host name)."""


def send(
    server: Server,
    msg: EmailMessage,
    settings: Settings,
    *,
    resolver: Resolver = resolve,
    context: ssl.SSLContext | None = None,
) -> str:
    """Send ``msg`` through ``server``; returns the address connected to. Raises
    :class:`service.notify.Refused` for a destination not allowed, :class:`MailFailed`
    otherwise. ``context`` verifies the server (default: the system's trust store)."""
    problem = server_problem(server, settings)
    if problem is not None:
        raise InvalidInput("smtp", problem)
    address = pinned_address(server.host, settings, resolver)
    tls = context if context is not None else ssl.create_default_context()
    timeout = settings.automation_http_timeout_seconds
    implicit = server.use_tls and server.port == IMPLICIT_TLS_PORT
    client: _Pinned = (
        _PinnedSSL(context=tls, timeout=timeout) if implicit else _Pinned(timeout=timeout)
    )
    step = "connect"
    try:
        client.open(address, server.host, server.port)
        if server.use_tls and not implicit:
            step = "starttls"
            client.starttls(context=tls)
        if server.username and server.password:
            step = "login"
            client.login(server.username, server.password)
        step = "send"
        client.send_message(msg)
    except smtplib.SMTPResponseException as exc:
        raise MailFailed(f"SMTP {step} failed: the server answered {exc.smtp_code}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise MailFailed(f"SMTP {step} failed: {type(exc).__name__}") from exc
    finally:
        _close(client)
    return address


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()
