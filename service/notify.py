"""Outbound HTTP for automations' ``notify`` actions, only where the admin allows.

A destination must start with one of ``automation_notify_allowlist`` (URL prefixes set by
the admin) and every address its host resolves to must be public, unless it lies in one
of ``automation_allowed_networks``: private, loopback, link-local, reserved, multicast
and unspecified addresses are refused by default (a notify must not reach the cloud's
metadata service or the internal network). httpx is used with a timeout and no redirects.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from service.errors import InvalidInput

if TYPE_CHECKING:
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


def check_address(url: str, settings: Settings, resolver: Resolver = resolve) -> None:
    """Raise :class:`Refused` unless every resolved address of ``url``'s host is public
    or inside ``automation_allowed_networks``."""
    host = urlsplit(url).hostname
    if not host:
        raise Refused("the URL has no host")
    allowed = [ipaddress.ip_network(n, strict=False) for n in settings.automation_allowed_networks]
    for raw in resolver(host):
        ip = ipaddress.ip_address(raw.split("%", 1)[0])
        if _internal(ip) and not any(ip in net for net in allowed):
            raise Refused(f"the host resolves to a non-public address ({ip})")


def post(url: str, body: str, content_type: str, settings: Settings) -> int:
    """POST ``body`` to ``url`` after both checks; returns the status (2xx), raises
    :class:`Refused`, or ``RuntimeError`` for a non-2xx answer or a transport error."""
    import httpx

    try:
        check_allowlisted(url, settings)
    except InvalidInput as exc:
        raise Refused("the URL is not in the admin's allowlist") from exc
    check_address(url, settings)
    try:
        resp = httpx.post(
            url,
            content=body.encode(),
            headers={"content-type": content_type},
            timeout=settings.automation_http_timeout_seconds,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise RuntimeError(f"the POST failed: {type(exc).__name__}") from exc
    if not 200 <= resp.status_code < 300:
        raise RuntimeError(f"the POST was answered {resp.status_code}")
    return resp.status_code
