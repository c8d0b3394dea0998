"""``python -m runner_image`` / ``pushpool-runner``: run one flow run and exit.

Exit codes (see :mod:`runner_image.runner`): 0 completed (reported or not), 1 the flow
failed, 2 bad environment, 3 runner fault (the flow did not run or its outcome is
unknown), 143 cancelled (SIGTERM or cancellation requested by the service), 130 on SIGINT.
"""

from __future__ import annotations

import os
import sys

EXIT_BAD_ENVIRONMENT = 2  # runner_image.runner.EXIT_BAD_ENVIRONMENT, without importing it
CANCELLED_EXIT_CODES = (130, 143)


def main() -> int:
    from runner_image.config import ConfigError, load_config

    try:
        config = load_config()
    except ConfigError as exc:
        print(f"pushpool-runner: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_ENVIRONMENT
    from runner_image.runner import run

    code = run(config)
    if code in CANCELLED_EXIT_CODES:
        # Do not wait for threads the interrupted flow may have left running.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
