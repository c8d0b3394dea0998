"""Notify resolves a host once and connects to the address it checked (no DNS rebinding
window), with the host's name in ``Host`` and, over TLS, in SNI and the certificate check."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.smtp_sink import self_signed

from service.notify import Refused, post
from service.settings import Settings

HOST = "hooks.example.test"


class Sink:
    def __init__(self, address: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.server_names: list[str | None] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                sink.requests.append((self.headers["host"], body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((address, port), Handler)
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: sink.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def sinks(tls: ssl.SSLContext | None = None) -> Iterator[tuple[Sink, Sink]]:
    """The allowed destination on 127.0.0.1 and an "internal" one on 127.0.0.2, same port."""
    allowed = Sink("127.0.0.1", 0, tls)
    internal = Sink("127.0.0.2", allowed.port)
    try:
        yield allowed, internal
    finally:
        allowed.close()
        internal.close()


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``socket.getaddrinfo`` answering for HOST 127.0.0.1 first, then 127.0.0.2 (what a
    rebinding DNS server does); other names as usual. Returns the answers given."""
    real = socket.getaddrinfo
    answers: list[str] = []

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != HOST:
            return real(host, *args, **kwargs)
        answers.append("127.0.0.1" if not answers else "127.0.0.2")
        return real(answers[-1], *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return answers


def settings(port: int, scheme: str = "http") -> Settings:
    return Settings(
        automation_notify_allowlist=[f"{scheme}://{HOST}:{port}/"],
        automation_allowed_networks=["127.0.0.1/32"],  # 127.0.0.2 stays refused
    )


def test_a_rebinding_answer_after_the_check_is_never_connected_to(rebinding: list[str]) -> None:
    with sinks() as (allowed, internal):
        url = f"http://{HOST}:{allowed.port}/hook"
        assert post(url, '{"text": "hi"}', "application/json", settings(allowed.port)) == 204
        assert allowed.requests == [(f"{HOST}:{allowed.port}", b'{"text": "hi"}')]
        assert internal.requests == [] and rebinding == ["127.0.0.1"]  # resolved once
        # Resolved again now, the host is internal: refused before any connection.
        with pytest.raises(Refused, match="non-public"):
            post(url, "{}", "application/json", settings(allowed.port))
        assert internal.requests == []


def test_tls_names_the_host_in_sni_and_checks_its_certificate(
    tmp_path: Path, rebinding: list[str]
) -> None:
    cert, key = self_signed(tmp_path, HOST, with_ip=False)  # valid for the name only
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    with sinks(server_tls) as (allowed, _):
        url = f"https://{HOST}:{allowed.port}/hook"
        tls_settings = settings(allowed.port, "https")
        assert post(url, "{}", "application/json", tls_settings, verify=client_tls) == 204
        assert allowed.server_names == [HOST]
        assert allowed.requests == [(f"{HOST}:{allowed.port}", b"{}")]
        # Checked against the name, not the address connected to: the same certificate
        # named by the address is refused.
        rebinding.clear()
        direct = settings(allowed.port, "https").model_copy(
            update={"automation_notify_allowlist": ["https://127.0.0.1:"]}
        )
        with pytest.raises(RuntimeError, match="ConnectError"):
            post(f"https://127.0.0.1:{allowed.port}/hook", "{}", "a/b", direct, verify=client_tls)
