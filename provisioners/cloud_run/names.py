"""Names and labels of a pool's Cloud Run resources, all derived from pool, run and attempt.

Cloud Run's rules: a job id is lowercase letters, digits and ``-``, starts with a letter,
does not end with ``-``, and is at most 63 characters; a job id plus its execution token
is fewer than 63. Label keys and values are lowercase letters, digits, ``_`` and ``-``
(keys start with a letter), at most 63 characters.
"""

from __future__ import annotations

import hashlib
import re

#: Labels every job (and its executions) carries; what provisioning creates carries POOL.
POOL_LABEL = "pushpool-pool"
RUN_LABEL = "pushpool-run"
ATTEMPT_LABEL = "pushpool-attempt"
#: The exact run id, which a label may only carry sanitised.
RUN_ANNOTATION = "pushpool.dev/run-id"
#: Appended by Cloud Run to the job id to name the execution ``submit`` starts.
EXECUTION_TOKEN = "x1"
JOB_ID_MAX = 63 - len(EXECUTION_TOKEN) - 2
LABEL_MAX = 63
#: Label key prefixes a user may not set: Google's and ours.
RESERVED_LABEL_PREFIXES = ("pushpool", "run.googleapis.com", "cloud.googleapis.com", "goog")

_LABEL_CHARS = re.compile(r"[^a-z0-9_-]+")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def label_value(text: str) -> str:
    """``text`` as a label value: itself when valid, else a cleaned form with a digest."""
    if _LABEL_VALUE.fullmatch(text):
        return text
    clean = _LABEL_CHARS.sub("-", text.lower()).strip("-_")
    return f"{clean[: LABEL_MAX - 9]}-{_digest(text)}".lstrip("-")


def check_label(key: str, value: str) -> None:
    """Raise ``ValueError`` naming what is wrong with a user's label."""
    if key.startswith(RESERVED_LABEL_PREFIXES):
        raise ValueError(
            f"label {key!r}: the prefixes {', '.join(RESERVED_LABEL_PREFIXES)} are reserved"
        )
    if not _LABEL_KEY.fullmatch(key):
        raise ValueError(
            f"label {key!r}: keys are 1-63 lowercase letters, digits, '_' or '-',"
            " starting with a letter"
        )
    if not _LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"label {key!r}: values are up to 63 lowercase letters, digits, '_' or '-'"
        )


def job_id(run_id: str, attempt: int) -> str:
    """The deterministic job id of one attempt of one run (the idempotency key)."""
    clean = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")
    suffix = f"-{_digest(f'{run_id}/{attempt}')}-{attempt}"
    head = f"pp-{clean}"[: JOB_ID_MAX - len(suffix)].rstrip("-")
    return f"{head}{suffix}"


def pool_labels(pool: str) -> dict[str, str]:
    return {POOL_LABEL: label_value(pool)}


def run_labels(pool: str, run_id: str, attempt: int) -> dict[str, str]:
    return {
        **pool_labels(pool),
        RUN_LABEL: label_value(run_id),
        ATTEMPT_LABEL: str(attempt),
    }


def slug(pool: str, limit: int) -> str:
    """A short ``[a-z][a-z0-9-]*`` form of ``pool``, distinct per pool, at most ``limit``."""
    clean = re.sub(r"[^a-z0-9-]+", "-", pool.lower()).strip("-")
    if clean == pool and len(clean) <= limit and clean[:1].isalpha():
        return clean
    return f"p{clean[: limit - 10]}-{_digest(pool)}".replace("--", "-")


def secret_prefix(pool: str) -> str:
    """Every Secret Manager secret the pool makes has an id starting with this (``_``
    never occurs in a slug, so no pool's prefix starts another's)."""
    return f"pushpool-{slug(pool, 40)}_"


def secret_id(pool: str, source: str) -> str:
    """The id of the secret holding a block value (``SecretValue.source``) for ``pool``:
    letters, digits, ``-`` and ``_``, at most 255 characters, distinct per source."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", source).strip("-")
    return f"{secret_prefix(pool)}{clean[:180]}-{_digest(source)}"
