"""The keyring that encrypts block secrets at rest (``cryptography``'s Fernet:
AES-128-CBC + HMAC-SHA256, authenticated; MultiFernet for rotation).

Where the keys come from, first match wins (see :func:`key_source`):

1. ``PUSHPOOL_BLOCKS_KEYS``: comma-separated key material, the first encrypts;
2. ``PUSHPOOL_BLOCKS_KEY_SECRET_ARN``: an AWS Secrets Manager secret whose string is
   the same comma-separated list (the AWS stack creates it and grants only the
   function read access to it);
3. the key file ``PUSHPOOL_HOME/blocks.key`` (one key a line, the first encrypts),
   created with a new key and mode 0600 on first use.

A key material that is a Fernet key is used as is; any other string of at least 32
characters (a Secrets Manager generated password, say) is stretched into one with
HKDF-SHA256. Keys are re-read when their source changes (the file's mtime) or, for
Secrets Manager, at most every ``SECRET_TTL_SECONDS`` and whenever a token does not
decrypt (another process rotated): a rotation never strands a running server.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from service.errors import BlockKeyError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from service.settings import Settings

KEY_FILE = "blocks.key"
SECRET_TTL_SECONDS = 60.0
_MIN_MATERIAL = 32
_HKDF_INFO = b"pushpool blocks key v1"


def new_key() -> str:
    """A fresh random Fernet key."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def fernet_key(material: str) -> bytes:
    """The Fernet key for one key material (a Fernet key as is, else HKDF-SHA256 of it)."""
    material = material.strip()
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32 and len(material) == 44:
            return material.encode()
    except (binascii.Error, ValueError):
        pass
    if len(material) < _MIN_MATERIAL:
        raise BlockKeyError(
            f"a blocks key must be a Fernet key or at least {_MIN_MATERIAL} characters long"
        )
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        material.encode()
    )
    return base64.urlsafe_b64encode(raw)


def split_materials(text: str) -> list[str]:
    """Key materials from a comma- or newline-separated list (blanks skipped)."""
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class KeySource(Protocol):
    """Where the keys live: ``read`` returns them (first encrypts); ``write`` replaces
    them, where the source can be written (else ``BlockKeyError``)."""

    def read(self) -> list[str]: ...

    def write(self, materials: Sequence[str]) -> None: ...

    def version(self) -> object:
        """Changes whenever ``read`` may return something else."""
        ...


class SettingsKeys:
    """Keys given in the server's settings: read only (the operator edits them)."""

    def __init__(self, materials: list[str]) -> None:
        self._materials = materials

    def read(self) -> list[str]:
        return list(self._materials)

    def write(self, materials: Sequence[str]) -> None:
        raise BlockKeyError(
            "the blocks keys come from PUSHPOOL_BLOCKS_KEYS: put the new key first there "
            "(keeping the old one after it), restart, then rotate with --reencrypt-only"
        )

    def version(self) -> object:
        return tuple(self._materials)


class FileKeys:
    """The key file under ``PUSHPOOL_HOME``: created 0600 with one new key if missing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[str]:
        if not self.path.exists():
            self._create()
        materials = split_materials(self.path.read_text())
        if not materials:
            raise BlockKeyError(f"the blocks key file {self.path} holds no key")
        return materials

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return
        with os.fdopen(fd, "w") as handle:
            handle.write(new_key() + "\n")

    def write(self, materials: Sequence[str]) -> None:
        """Replace the keys atomically (a new 0600 file renamed over the old)."""
        temp = self.path.with_name(self.path.name + ".new")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(m + "\n" for m in materials))
        os.replace(temp, self.path)

    def version(self) -> object:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


class SecretsManagerKeys:
    """An AWS Secrets Manager secret holding the comma-separated keys (boto3 is imported
    only here, only when the settings name such a secret)."""

    def __init__(
        self, arn: str, *, client: Any = None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.arn = arn
        self._client = client
        self._monotonic = monotonic
        self._read_at = -SECRET_TTL_SECONDS

    def _sm(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("secretsmanager")
        return self._client

    def read(self) -> list[str]:
        self._read_at = self._monotonic()
        try:
            text = self._sm().get_secret_value(SecretId=self.arn)["SecretString"]
        except Exception as exc:  # botocore errors: say which secret, never its value
            raise BlockKeyError(
                f"cannot read the blocks key secret {self.arn}: {type(exc).__name__}"
            ) from None
        return split_materials(text)

    def write(self, materials: Sequence[str]) -> None:
        self._sm().put_secret_value(SecretId=self.arn, SecretString=",".join(materials))

    def version(self) -> object:
        return int((self._monotonic() - self._read_at) // SECRET_TTL_SECONDS)


def key_source(settings: Settings) -> KeySource:
    """The source the settings select (see the module docstring for the order)."""
    if settings.blocks_keys is not None:
        return SettingsKeys(split_materials(settings.blocks_keys.get_secret_value()))
    if settings.blocks_key_secret_arn:
        return SecretsManagerKeys(settings.blocks_key_secret_arn)
    return FileKeys(settings.home / KEY_FILE)


class Keyring:
    """Encrypts with the source's first key, decrypts with any of its keys."""

    def __init__(self, source: KeySource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._loaded: tuple[object, MultiFernet] | None = None

    def _fernet(self, *, reload: bool = False) -> MultiFernet:
        from cryptography.fernet import Fernet, MultiFernet

        with self._lock:
            version = self.source.version()
            if reload or self._loaded is None or self._loaded[0] != version:
                materials = self.source.read()
                fernet = MultiFernet([Fernet(fernet_key(m)) for m in materials])
                self._loaded = (self.source.version(), fernet)
            return self._loaded[1]

    def reload(self) -> None:
        """Read the keys again now (after this process changed them)."""
        self._fernet(reload=True)

    def encrypt(self, value: str) -> str:
        return self._fernet().encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The value in clear; ``BlockKeyError`` (naming no value) when no key opens it,
        after one reload of the keys (another process may have rotated them)."""
        from cryptography.fernet import InvalidToken

        for reload in (False, True):
            try:
                return self._fernet(reload=reload).decrypt(token.encode()).decode()
            except InvalidToken:
                continue
        raise BlockKeyError("a block secret does not decrypt with any of the blocks keys")

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the first key (``BlockKeyError`` if unreadable)."""
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet().rotate(token.encode()).decode()
        except InvalidToken:
            raise BlockKeyError(
                "a block secret does not decrypt with any of the blocks keys"
            ) from None
