"""Cache policies: how a task run's cache key is computed.

``INPUTS`` hashes the call's arguments, ``TASK_SOURCE`` the task's source code,
``NONE`` disables caching; policies combine with ``+`` (``INPUTS + TASK_SOURCE``).
A task's ``cache_key_fn(context, parameters)`` takes precedence over its policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pushpool.errors import CacheKeyError


@dataclass(frozen=True)
class CacheContext:
    """What a policy or ``cache_key_fn`` may look at besides the parameters."""

    task_key: str
    fn: Callable[..., Any]
    flow_run_id: str | None


class CachePolicy:
    """A cache-key function over (context, parameters); ``None`` means "do not cache"."""

    parts: tuple[str, ...] = ()

    def compute_key(self, context: CacheContext, parameters: Mapping[str, Any]) -> str | None:
        pieces = [_PIECES[name](context, parameters) for name in self.parts]
        if not pieces:
            return None
        return _digest("|".join([context.task_key, *pieces]))

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return _Compound(tuple(dict.fromkeys((*self.parts, *other.parts))))

    def __repr__(self) -> str:
        return " + ".join(self.parts) if self.parts else "NONE"


@dataclass(frozen=True, repr=False)
class _Compound(CachePolicy):
    parts: tuple[str, ...] = ()


def _hash_inputs(context: CacheContext, parameters: Mapping[str, Any]) -> str:
    import json

    try:
        text = json.dumps(parameters, sort_keys=True, default=_fallback, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise CacheKeyError(
            f"task {context.task_key!r}: cannot hash its inputs for the cache key ({exc}); "
            "pass cache_key_fn= or a policy without INPUTS"
        ) from exc
    return _digest(text)


def _fallback(value: Any) -> Any:
    """Stable JSON stand-ins for common non-JSON inputs; pickle bytes for the rest."""
    if isinstance(value, set | frozenset):
        return sorted(map(repr, value))
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    import hashlib
    import pickle

    return hashlib.sha256(pickle.dumps(value)).hexdigest()


def _hash_source(context: CacheContext, parameters: Mapping[str, Any]) -> str:
    import inspect

    try:
        return _digest(inspect.getsource(context.fn))
    except (OSError, TypeError):
        code = getattr(context.fn, "__code__", None)
        return _digest(repr(code.co_code if code else context.task_key))


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


_PIECES: dict[str, Callable[[CacheContext, Mapping[str, Any]], str]] = {
    "INPUTS": _hash_inputs,
    "TASK_SOURCE": _hash_source,
}

INPUTS: CachePolicy = _Compound(("INPUTS",))
TASK_SOURCE: CachePolicy = _Compound(("TASK_SOURCE",))
NONE: CachePolicy = _Compound(())
DEFAULT: CachePolicy = INPUTS + TASK_SOURCE
