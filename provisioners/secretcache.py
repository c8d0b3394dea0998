"""What a provisioner last wrote to a platform's secret store, so an unchanged block value
is not written again on every run (a new version per run would pile up). Values are kept
only as keyed digests (the key is random per process), never in clear."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading


class WrittenSecrets:
    """``name -> (reference, digest of the value written)`` for one process."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._known: dict[str, tuple[str, bytes]] = {}
        self._lock = threading.Lock()

    def _digest(self, value: str) -> bytes:
        return hmac.new(self._key, value.encode(), hashlib.sha256).digest()

    def reference(self, name: str, value: str) -> str | None:
        """What :meth:`remember` stored for ``name`` if ``value`` is what was written."""
        with self._lock:
            known = self._known.get(name)
        if known is None or not hmac.compare_digest(known[1], self._digest(value)):
            return None
        return known[0]

    def remember(self, name: str, value: str, reference: str) -> None:
        digest = self._digest(value)
        with self._lock:
            self._known[name] = (reference, digest)

    def forget(self, name: str) -> None:
        """Drop what was remembered for ``name`` (and for ``name`` with a qualifier after a
        space, e.g. ``"<secret id> <reader>"``): it is written again on next use."""
        with self._lock:
            for key in [k for k in self._known if k == name or k.startswith(name + " ")]:
                del self._known[key]

    def clear(self) -> None:
        with self._lock:
            self._known.clear()
