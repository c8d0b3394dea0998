"""A local SMTP sink (aiosmtpd) on a free loopback port: STARTTLS with a self-signed
certificate for ``localhost``, AUTH with one user, every message kept."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from support.server import free_port

USER, PASSWORD = "mailer@example.test", "smtp-pa55word-never-shown"


def self_signed(
    directory: Path, host: str = "localhost", with_ip: bool = True
) -> tuple[Path, Path]:
    """A certificate for ``host`` (and 127.0.0.1 ``with_ip``) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host)]
                + ([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))] if with_ip else [])
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Sink:
    port: int
    cert: Path
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    #: Answer every MAIL FROM with this reply instead (a failing server), if set.
    refuse: str | None = None

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the sink's certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


@contextmanager
def smtp_sink(directory: Path, *, implicit_tls: bool = False) -> Iterator[Sink]:
    """Run the sink for the ``with`` block (stopped after it): STARTTLS, or TLS from the
    first byte with ``implicit_tls``."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = self_signed(directory)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    sink = Sink(port=free_port(), cert=cert)

    class Handler:
        async def handle_MAIL(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            if sink.refuse is not None:
                return sink.refuse
            envelope.mail_from = address
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            sink.messages.append(msg)
            return "250 Message accepted"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            sink.logins.append(USER)
        return AuthResult(success=ok)

    # aiosmtpd sees no STARTTLS on an implicit TLS connection: AUTH is over TLS all the
    # same (the test ignores its warning about it).
    implicit = {"ssl_context": tls, "auth_require_tls": False}
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=sink.port,
        server_hostname="localhost",
        **(implicit if implicit_tls else {"tls_context": tls, "require_starttls": True}),
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
