"""Key rotation: a new key first in the key source, every secret re-encrypted under it,
then (by default) the old keys dropped. Safe while servers run: they re-read the keys
when the source changes or a token does not open, and keep decrypting with every key
listed until the old ones go, after all secrets moved."""

from __future__ import annotations

from collections.abc import Callable

from service.blocks.crypto import new_key
from service.blocks.ops import keyring, rotate_all
from service.services import Services


def rotate(
    svc: Services,
    *,
    add_key: bool = True,
    drop_old: bool = True,
    progress: Callable[[str], None] = lambda ref: None,
) -> int:
    """Rotate; returns how many documents were re-encrypted. ``add_key=False``
    re-encrypts under the source's current first key (a key the operator put first)."""
    ring = keyring(svc)
    source = ring.source
    old = source.read()
    if add_key:
        source.write([new_key(), *old])
        ring.reload()
    count = rotate_all(svc, progress)
    if add_key and drop_old:
        source.write(source.read()[:1])
        ring.reload()
    return count
