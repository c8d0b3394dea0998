"""Benchmark: ACI pools against the ARM emulator — ARM calls per run, import cost, and the
time from 1,000 runs due to the last one submitted under ACI's create quota.

    python -m tests.benchmarks.aci

Targets (issue 11): submit <= 2 calls; a status pass over 100 live runs <= 3 calls. ARM's
list of container groups carries no instance views (Azure/azure-sdk-for-python#27068),
so a pass lists once, asks Resource Graph once per 1,000 groups for instance states, and
GETs only the groups the graph shows ended (for their exit codes) or lacks.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.benchmarks._common import REPO, table

sys.path.insert(0, str(REPO / "tests"))

from emulators.azure.drive import due_at_once, run_to_completion
from emulators.azure.harness import RESOURCE_GROUP, pool_config
from emulators.azure.server import Emulator, azure_emulator
from support.clock import FakeClock

from provisioners.aci import AciProvisioner, quota
from provisioners.aci.arm import EMULATOR_ENV
from provisioners.aci.quota import QuotaLimiter
from provisioners.base import SubmitRequest


def _request() -> SubmitRequest:
    run_id = str(uuid.uuid4())
    return SubmitRequest(run_id, 1, "f", "d", env={"PUSHPOOL_FLOW_RUN_ID": run_id})


ROOMY = {
    "creates_per_5_minutes": 9999,
    "creates_per_hour": 9999,
    "max_groups": 9999,
    "max_cores": 9999,
}


def calls_per_run(emulator: Emulator) -> list[tuple[str, int]]:
    p = AciProvisioner("bench", pool_config(quota=ROOMY), limiter=QuotaLimiter())
    a = emulator.azure
    a.requests.clear()
    p.submit(_request())
    submit = len(a.requests)
    refs = [p.submit(_request()) for _ in range(100)]
    a.requests.clear()
    p.status_many(refs)
    creating = len(a.requests)
    for ref in refs:
        a.start(str(ref.data["name"]))
    a.requests.clear()
    p.status_many(refs)
    running = len(a.requests)
    for ref in refs[:10]:
        a.exit(str(ref.data["name"]), 137, "OOMKilled")
    a.requests.clear()
    p.status_many(refs)
    ended = len(a.requests)
    return [
        ("submit one run", submit),
        ("status pass, 100 groups creating", creating),
        ("status pass, 100 groups running", running),
        ("status pass, 100 groups: 90 running, 10 exited", ended),
        ("status pass, 1,000 groups running", _running_pass(emulator, "bench-1k", 1000)[0]),
        *_lagging_index(emulator),
    ]


def _running_pass(emulator: Emulator, pool: str, n: int, passes: int = 1) -> list[int]:
    """Calls of each of ``passes`` status passes over ``n`` running groups of ``pool``."""
    p = AciProvisioner(pool, pool_config(quota=ROOMY), limiter=QuotaLimiter())
    refs = [p.submit(_request()) for _ in range(n)]
    for ref in refs:
        emulator.azure.start(str(ref.data["name"]))
    counts = []
    for _ in range(passes):
        emulator.azure.requests.clear()
        p.status_many(refs)
        counts.append(len(emulator.azure.requests))
    return counts


def _lagging_index(emulator: Emulator) -> list[tuple[str, int]]:
    """Resource Graph indexing no runtime change (no full scan): the groups started after
    their PUT was indexed are read once each, then believed while their row is unchanged."""
    emulator.azure.graph_scan_seconds = 1e9
    first, second = _running_pass(emulator, "bench-lag", 100, passes=2)
    emulator.azure.graph_scan_seconds = 0.0
    return [
        ("status pass, 100 running, index lagging: 1st pass", first),
        ("status pass, 100 running, index lagging: next passes", second),
    ]


def import_cost(repeats: int = 5) -> list[tuple[str, float]]:
    cases = {
        "python -c pass": "pass",
        "import provisioners.aci (no SDK)": "import provisioners.aci",
        "import azure.mgmt.containerinstance": "import azure.mgmt.containerinstance",
        "first ACI client": (
            "from provisioners.aci.arm import ArmClient;"
            "ArmClient('00000000-0000-0000-0000-000000000000').client('containers')"
        ),
    }
    env = {**os.environ, EMULATOR_ENV: "http://127.0.0.1:9"}
    out = []
    for label, code in cases.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=env)
            times.append((time.perf_counter() - start) * 1000)
        out.append((label, statistics.median(times)))
    return out


def thousand_runs() -> tuple[float, float, int]:
    """(hours of fake time from due to last create, wall seconds, ticks)."""
    from service.bootstrap import ensure_default_pool
    from service.pools import WorkPoolCreate, create_pool
    from service.services import build_services
    from service.settings import Settings
    from service.store.sql import SqlStore

    clock = FakeClock()
    seconds = lambda: clock().timestamp()  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp, azure_emulator(seconds) as emulator:
        os.environ[EMULATOR_ENV] = emulator.url
        emulator.add_resource_group(RESOURCE_GROUP)
        emulator.azure.on_create = lambda name, group: emulator.azure.start(name)
        config = pool_config()
        store = SqlStore(f"sqlite:///{Path(tmp) / 'store.db'}")
        store.migrate()
        # The windows in the store, as every replica of the control plane keeps them.
        key = (config["subscription_id"].lower(), config["location"])
        windows = quota.StoreWindows(store, quota.window_key(*key))
        quota._limiters[key] = QuotaLimiter(seconds, windows)
        services = build_services(Settings(home=Path(tmp) / "home"), store, clock)
        ensure_default_pool(services)
        create_pool(services, WorkPoolCreate(name="azure", type="aci", config=config))
        due = clock().timestamp()
        due_at_once(services, clock, "azure", 1000)
        start = time.perf_counter()
        ticks = run_to_completion(services, clock, tick_seconds=60, max_ticks=600)
        wall = time.perf_counter() - start
        hours = (emulator.azure.create_times[-1] - due) / 3600
        store.close()
        return hours, wall, ticks


def main() -> None:
    with azure_emulator() as emulator:
        os.environ[EMULATOR_ENV] = emulator.url
        emulator.add_resource_group(RESOURCE_GROUP)
        calls = calls_per_run(emulator)
    print(table(["ARM calls", "count"], calls))
    print()
    print(table(["import (fresh process, median of 5)", "ms"], [
        (label, f"{ms:.0f}") for label, ms in import_cost()
    ]))  # fmt: skip
    hours, wall, ticks = thousand_runs()
    print()
    print(
        f"1,000 runs due at once, one tick a minute: last submitted after {hours:.2f} h of"
        f" (fake) time; the quota's bound is 3.00 h (300 creates/h, 100 per 5 min);"
        f" {ticks} ticks, {wall:.1f} s wall"
    )


if __name__ == "__main__":
    main()
