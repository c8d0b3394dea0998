"""The store sits below the engine: it imports nothing from ``service.states``."""

from __future__ import annotations

import subprocess
import sys

from service import states, vocabulary


def test_the_store_does_not_import_the_engine() -> None:
    code = (
        "import sys\n"
        "import service.store.base, service.store.sql, service.store.dynamo, service.models\n"
        "engine = sorted(m for m in sys.modules if m in ('service.states', 'service.scheduler',"
        " 'service.dispatch', 'service.reconcile'))\n"
        "print(','.join(engine))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""


def test_the_vocabulary_is_still_importable_from_states() -> None:
    assert states.StateType is vocabulary.StateType
    assert states.TERMINAL is vocabulary.TERMINAL and states.ACTIVE is vocabulary.ACTIVE
