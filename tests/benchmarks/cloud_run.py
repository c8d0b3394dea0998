"""Benchmark: the ``cloud-run`` pool type's Google API calls per run, and its import cost.

    python -m tests.benchmarks.cloud_run [--repeats 5]

Calls are counted by the GCP emulator (tests/emulators/gcp) that the real client libraries
talk to over REST: one submit, one status pass over 100 and over 1,000 live runs (half
running, a few just failed, the rest pending), one teardown. Targets (issue 10): submit
<= 2 calls, a status pass over 1,000 runs <= 20 calls.

Import cost: fresh processes (median of ``--repeats``) that import the pool type's
provisioner and make its first client, the Cloud Run path beside the ECS path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import uuid
from typing import Any

from tests.benchmarks._common import REPO, table

sys.path[:0] = [str(REPO / "tests")]

_IMPORT = """
import os, time
t0 = time.perf_counter()
from provisioners.base import provisioner_class
cls = provisioner_class(os.environ["BENCH_TYPE"])
t1 = time.perf_counter()
if os.environ["BENCH_TYPE"] == "ecs":
    from provisioners.ecs.aws import AwsClient
    AwsClient("us-east-1").client("ecs")
else:
    os.environ["PUSHPOOL_GCP_EMULATOR_URL"] = "http://127.0.0.1:9"
    from provisioners.cloud_run.gcp import Gcp
    Gcp("demo-project", "us-central1").client("jobs")
t2 = time.perf_counter()
print(f"{t1 - t0} {t2 - t0}")
"""


def _request(n: int) -> Any:
    from provisioners.base import SubmitRequest

    run_id = str(uuid.uuid4())
    env = {"PUSHPOOL_FLOW_RUN_ID": run_id, "PUSHPOOL_RUN_TOKEN": f"token-{n}"}
    return SubmitRequest(run_id, 1, "flow", "dep", env=env)


def calls() -> list[tuple[str, int, str]]:
    from emulators.gcp import running_emulator

    from provisioners.cloud_run import CloudRunProvisioner
    from provisioners.ratelimit import TokenBucket

    rows = []
    with running_emulator() as emulator:
        os.environ["PUSHPOOL_GCP_EMULATOR_URL"] = emulator.url
        config = {"project": "demo-project", "region": "us-central1", "image": "runner:bench"}
        provisioner = CloudRunProvisioner("bench", config, limiter=TokenBucket(1e9, 10**9))
        journal = emulator.journal

        def counted(label: str, target: str, action: Any) -> Any:
            before = journal.count()
            result = action()
            rows.append((label, journal.count() - before, target))
            return result

        request = _request(0)
        first = counted("submit (create job + execution)", "<= 2", lambda: provisioner.submit(
            request))  # fmt: skip
        counted("submit again (409, then adopt)", "", lambda: provisioner.submit(request))
        refs = [first] + [provisioner.submit(_request(n)) for n in range(1, 1000)]
        for ref in refs[:500]:
            emulator.run.start(ref.id)
        for ref in refs[500:510]:
            emulator.run.finish(ref.id, 1)
        sample = refs[:50] + refs[500:505] + refs[950:995]
        counted("status pass, 100 live runs", "", lambda: provisioner.status_many(sample))
        counted("status pass, 1,000 live runs", "<= 20", lambda: provisioner.status_many(refs))
        counted("status of one run", "", lambda: provisioner.status(refs[0]))
        counted("teardown (running: cancel + delete)", "", lambda: provisioner.teardown(refs[0]))
        counted("teardown (finished)", "", lambda: provisioner.teardown(refs[500]))
        counted("sweep listing (list_orphans)", "", lambda: provisioner.list_orphans(set()))
    return rows


def import_cost(repeats: int) -> list[tuple[str, str, str]]:
    rows = []
    for pool_type in ("ecs", "cloud-run"):
        imports, clients = [], []
        for _ in range(repeats):
            env = {**os.environ, "BENCH_TYPE": pool_type, "AWS_DEFAULT_REGION": "us-east-1"}
            out = subprocess.run(
                [sys.executable, "-c", _IMPORT],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout.split()
            imports.append(float(out[0]))
            clients.append(float(out[1]))
        rows.append(
            (
                pool_type,
                f"{statistics.median(imports) * 1000:.0f}",
                f"{statistics.median(clients) * 1000:.0f}",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("Google API calls (GCP emulator, real client libraries over REST)")
    print(table(("operation", "calls", "target"), calls()))
    print()
    print(f"Fresh process, median of {args.repeats} (ms)")
    print(table(("pool type", "import provisioner", "+ first client"), import_cost(args.repeats)))


if __name__ == "__main__":
    main()
