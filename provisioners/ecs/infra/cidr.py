"""Choosing a VPC CIDR block that overlaps none the account already has."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from provisioners.errors import ProvisionerError

SUBNET_PREFIX = 20


def candidates() -> Iterator[ipaddress.IPv4Network]:
    """Private /16 blocks, in the order they are tried."""
    for second in range(256):
        yield ipaddress.IPv4Network(f"10.{second}.0.0/16")
    for second in range(16, 32):
        yield ipaddress.IPv4Network(f"172.{second}.0.0/16")
    yield ipaddress.IPv4Network("192.168.0.0/16")


def choose(taken: Iterable[str]) -> str:
    """The first candidate overlapping none of the ``taken`` CIDR blocks."""
    used = [ipaddress.ip_network(cidr) for cidr in taken]
    for block in candidates():
        if not any(block.overlaps(other) for other in used):
            return str(block)
    raise ProvisionerError("every private /16 block overlaps an existing VPC")


def subnet(vpc_cidr: str, index: int) -> str:
    """The ``index``-th /20 of a VPC's block."""
    return str(list(ipaddress.ip_network(vpc_cidr).subnets(new_prefix=SUBNET_PREFIX))[index])
