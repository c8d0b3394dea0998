"""Human names for flow runs (``crimson-otter``), as Prefect gives them.

A run's default name is derived from its id, so it is chosen once, at creation, and the
same id (a scheduled run materialised by two overlapping ticks) always gets the same name.
Names are memorable, not unique (about 370,000 of them): wherever a run is looked up by
name, more than one match is reported as ambiguous.
"""

from __future__ import annotations

import random
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from coolname import RandomGenerator

__all__ = ["run_name"]

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _generator() -> RandomGenerator:
    from coolname import RandomGenerator
    from coolname.data import config

    return RandomGenerator(cast(Any, config))  # the package's own config, typed loosely


def run_name(run_id: str) -> str:
    """Two words (adjective-animal) chosen by ``run_id``: the same id, the same name."""
    generator = _generator()
    with _lock:  # the generator's source of randomness is swapped per call
        generator.random = random.Random(run_id)
        return generator.generate_slug(2)
