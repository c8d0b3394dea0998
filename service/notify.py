"""Outbound HTTP for automations' ``notify`` actions, only where the admin allows.

A destination must start with one of ``automation_notify_allowlist`` (URL prefixes set by
the admin) and every address its host resolves to must be public, unless it lies in one
of ``automation_allowed_networks``: private, loopback, link-local, reserved, multicast
and unspecified addresses are refused by default (a notify must not reach the cloud's
metadata service or the internal network). httpx is used with a timeout and no redirects.

The host is resolved once: the connection goes to the address that was checked (the URL's
host replaced by it), with the URL's ``Host`` header and, for ``https``, the TLS server
name (SNI) and certificate check of the host name (httpx's ``sni_hostname`` extension) —
so a DNS answer that changes between the check and the connection (rebinding) cannot
send the request elsewhere. :func:`pinned_address` serves the e-mail action the same way.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from service.errors import InvalidInput

if TYPE_CHECKING:
    import ssl

    from service.settings import Settings

Resolver = Callable[[str], list[str]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """A destination the settings do not allow; the message names the reason, not the URL."""


def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"the host does not resolve ({exc.strerror})") from exc
    return sorted({str(info[4][0]) for info in infos})


def check_allowlisted(url: str, settings: Settings, *, field: str = "url") -> None:
    """``InvalidInput`` unless ``url`` starts with a prefix of the admin's allowlist."""
    if not any(url.startswith(prefix) for prefix in settings.automation_notify_allowlist):
        raise InvalidInput(
            field, "is not in the admin's allowlist (PUSHPOOL_AUTOMATION_NOTIFY_ALLOWLIST)"
        )


def _internal(ip: IpAddress) -> bool:
    return bool(
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def pinned_address(host: str, settings: Settings, resolver: Resolver = resolve) -> str:
    """Resolve ``host`` once and return the address to connect to; raise
    :class:`Refused` unless every address it resolves to is public or inside
    ``automation_allowed_networks``."""
    allowed = [ipaddress.ip_network(n, strict=False) for n in settings.automation_allowed_networks]
    addresses = resolver(host)
    if not addresses:
        raise Refused("the host resolves to no address")
    for raw in addresses:
        ip = ipaddress.ip_address(raw.split("%", 1)[0])
        if _internal(ip) and not any(ip in net for net in allowed):
            raise Refused(f"the host resolves to a non-public address ({ip})")
    return addresses[0]


def check_address(url: str, settings: Settings, resolver: Resolver = resolve) -> str:
    """:func:`pinned_address` of ``url``'s host."""
    host = urlsplit(url).hostname
    if not host:
        raise Refused("the URL has no host")
    return pinned_address(host, settings, resolver)


def post(
    url: str,
    body: str,
    content_type: str,
    settings: Settings,
    *,
    resolver: Resolver = resolve,
    verify: ssl.SSLContext | bool = True,
) -> int:
    """POST ``body`` to ``url`` after both checks, connecting to the checked address;
    returns the status (2xx), raises :class:`Refused`, or ``RuntimeError`` for a non-2xx
    answer or a transport error. ``verify`` is httpx's (tests pass their own CA)."""
    import httpx

    try:
        check_allowlisted(url, settings)
    except InvalidInput as exc:
        raise Refused("the URL is not in the admin's allowlist") from exc
    address = check_address(url, settings, resolver)
    target = httpx.URL(url)
    headers = {"content-type": content_type, "host": target.netloc.decode("ascii")}
    https = target.scheme == "https"
    extensions = {"sni_hostname": target.raw_host.decode("ascii")} if https else {}
    try:
        with httpx.Client(verify=verify, timeout=settings.automation_http_timeout_seconds) as c:
            resp = c.post(
                target.copy_with(host=address),
                content=body.encode(),
                headers=headers,
                extensions=extensions,
                follow_redirects=False,
            )
    except httpx.HTTPError as exc:
        raise RuntimeError(f"the POST failed: {type(exc).__name__}") from exc
    if not 200 <= resp.status_code < 300:
        raise RuntimeError(f"the POST was answered {resp.status_code}")
    return resp.status_code
