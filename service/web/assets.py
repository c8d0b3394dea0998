"""Static files under content-hashed names: ``/static/app.3f2a1b9c.css`` never changes, so
it is cached for a year (``immutable``); a new file gets a new name. No CDN, no Node.js."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
#: Hashed names never change content: cache them for a year.
CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    path: Path
    url_name: str  # e.g. "app.3f2a1b9c.css"
    etag: str
    media_type: str


def _hashed_name(path: Path, digest: str) -> str:
    stem, _, ext = path.name.partition(".")
    return f"{stem}.{digest[:10]}.{ext}"


@functools.cache
def assets() -> dict[str, Asset]:
    """Every static file by its plain name (``app.css``), read and hashed once."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.suffix not in MEDIA_TYPES:
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        found[path.name] = Asset(
            path, _hashed_name(path, digest), f'"{digest[:32]}"', MEDIA_TYPES[path.suffix]
        )
    return found


@functools.cache
def by_url_name() -> dict[str, Asset]:
    return {a.url_name: a for a in assets().values()}


def url_for_static(name: str) -> str:
    """The hashed URL of the static file ``name`` (``KeyError`` for an unknown one)."""
    return f"/static/{assets()[name].url_name}"
