"""Benchmark: the cost of one scheduler tick against N deployments, 1% of them due.

    python -m tests.benchmarks.tick [--sizes 10000,100000] [--due-percent 1] [--repeats 5]

Setup (not measured, but reported): a store holds N deployments, each with one cron
schedule: SQLite in a temporary directory, and (``--stores sqlite,postgres``, the default)
PostgreSQL on a server this script starts (tests/support/postgres.py) and stops. The due
ones (``0 12 * * *``) were deployed at 11:00:30, so their cursor ``next_fire_at`` is
12:00:00; the others (``0 3 * * *``) have their cursor at 03:00 the next day, far outside
the one-hour horizon. Rows are written
with bulk SQL inserts of exactly what ``SqlStore.upsert_deployment`` writes (``--setup
store`` goes through that API instead; much slower). The database is built once per N and
copied before each measured tick into a fresh one (SQLite: the backup API into a new
file; PostgreSQL: ``CREATE DATABASE … TEMPLATE``).

Measured: ``Scheduler.tick(now)`` at 12:00:30 with an injected fixed clock, on a fresh
store per repetition (OS page cache warm, SQLite/SQLAlchemy connection state fresh; the
process has run a warm-up tick on a small database first, so imports and SQLAlchemy's
statement cache are warm). The tick materialises, applies the missed-run policy,
dispatches, reconciles, and (first tick) sweeps orphans. Two pool variants:

* ``paused``: the pool is a *paused* ``process`` pool: runs are materialised, nothing is
  dispatched and no process is spawned.
* ``dispatch``: the pool's type is ``bench``, a no-op provisioner registered by this
  script (``submit`` returns an InfraRef at once, ``status`` says RUNNING), so dispatch
  cost is the service's own overhead around the provider call.

A control row keeps the *number of due schedules* fixed while N grows: if the tick's cost
follows due work, it costs the same at 10k and 100k deployments.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from provisioners.base import (
    REGISTRY,
    InfraRef,
    InfraState,
    InfraStatus,
    Provisioner,
    SubmitRequest,
)
from service.models import CatchupPolicy, Deployment, LocalSource
from service.pools import WorkPoolCreate, create_pool
from service.scheduler import TickReport, schedule_records
from service.schedules import CronSchedule
from service.services import Services, build_services
from service.settings import Settings
from service.store import tables as t
from service.store.sql import SqlStore

from ._common import EXAMPLES, REPO, load_note, median, ms, table

sys.path.insert(0, str(REPO / "tests"))
from support.postgres import PostgresServer, shared_server, stop_shared_server

NOW = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
DEPLOYED_AT = NOW - timedelta(hours=1)
DUE_CRON = "0 12 * * *"  # cursor 12:00:00 today: due, 30 s ago (inside the misfire grace)
IDLE_CRON = "0 3 * * *"  # cursor 03:00 tomorrow: outside the 1 h horizon
POOL = "target"
BENCH_TYPE = "bench"


# -- the no-op provisioner ---------------------------------------------------------------
class NullProvisioner(Provisioner):
    """Starts nothing: ``submit`` returns at once, everything reports RUNNING."""

    type = BENCH_TYPE
    #: Time spent inside ``submit`` (the "provider call"), summed over all instances.
    submit_seconds = 0.0
    submits = 0

    def submit(self, request: SubmitRequest) -> InfraRef:
        t0 = time.perf_counter()
        ref = InfraRef(type=BENCH_TYPE, id=request.idempotency_key, data={"run_id": request.run_id})
        NullProvisioner.submit_seconds += time.perf_counter() - t0
        NullProvisioner.submits += 1
        return ref

    def find(self, request: SubmitRequest) -> InfraRef | None:
        return None

    def status(self, ref: InfraRef) -> InfraStatus:
        return InfraStatus(InfraState.RUNNING)

    def cancel(self, ref: InfraRef, grace_seconds: float) -> None:
        return None

    def teardown(self, ref: InfraRef) -> None:
        return None

    def list_orphans(self, live_run_ids: set[str]) -> list[InfraRef]:
        return []


# ``__name__`` is "__main__" under ``python -m``: the registry then finds this very module.
REGISTRY[BENCH_TYPE] = f"{__name__}:NullProvisioner"


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# -- setup ------------------------------------------------------------------------------------
def _settings(home: Path) -> Settings:
    return Settings(home=home, host="127.0.0.1", port=4300)


def _due_indices(n: int, due: int) -> set[int]:
    """``due`` indices spread evenly over ``range(n)``."""
    return {k * n // due for k in range(due)}


def _deployment(i: int, cron: str) -> Deployment:
    return Deployment(
        id=str(uuid.UUID(int=i + 1)),
        name=f"d{i:07d}",
        flow_name="bench",
        entrypoint="hello.py:hello",
        work_pool=POOL,
        source=LocalSource(path=str(EXAMPLES)),
        schedules=[CronSchedule(cron=cron)],
        catchup=CatchupPolicy.LATEST,
        created_at=DEPLOYED_AT,
        updated_at=DEPLOYED_AT,
    )


def _rows(n: int, due: int) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Exactly the rows ``SqlStore.upsert_deployment`` writes, for each deployment."""
    due_at = _due_indices(n, due)
    templates = {cron: _deployment(0, cron) for cron in (DUE_CRON, IDLE_CRON)}
    for i in range(n):
        template = templates[DUE_CRON if i in due_at else IDLE_CRON]
        dep = template.model_copy(update={"id": str(uuid.UUID(int=i + 1)), "name": f"d{i:07d}"})
        records = schedule_records(dep, DEPLOYED_AT)
        yield (
            SqlStore._deployment_row(dep),
            [
                {
                    "id": r.id,
                    "deployment_id": dep.id,
                    "doc": r.schedule.model_dump(mode="json"),
                    "active": r.active,
                    "next_fire_at": r.next_fire_at if r.active else None,
                }
                for r in records
            ],
        )


class Databases:
    """Where templates and their per-tick copies live: SQLite files under ``base``, or
    databases on a PostgreSQL server (copied with ``CREATE DATABASE … TEMPLATE``)."""

    def __init__(self, kind: str, base: Path, server: PostgresServer | None = None) -> None:
        self.kind, self.base, self.server = kind, base, server
        self._n = 0

    def new(self) -> str:
        self._n += 1
        if self.server is None:
            return f"sqlite:///{self.base / f'db{self._n}.db'}"
        return self.server.new_database()

    def copy(self, template: str) -> str:
        if self.server is None:
            self._n += 1
            dst = self.base / f"copy{self._n}.db"
            copy_database(Path(template.removeprefix("sqlite:///")), dst)
            return f"sqlite:///{dst}"
        return self.server.new_database(template=template.rsplit("/", 1)[1])

    def drop(self, url: str) -> None:
        if self.server is None:
            path = Path(url.removeprefix("sqlite:///"))
            for extra in ("", "-wal", "-shm"):
                Path(f"{path}{extra}").unlink(missing_ok=True)
            return
        import psycopg

        with psycopg.connect(self.server.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}"')


def build_database(url: str, home: Path, n: int, due: int, method: str) -> float:
    """Create the store at ``url`` with ``n`` deployments; return the seconds it took."""
    t0 = time.perf_counter()
    store = SqlStore(url)
    store.migrate()
    svc = build_services(_settings(home), store, FixedClock(DEPLOYED_AT))
    runs_dir = home / "runs"
    create_pool(
        svc,
        WorkPoolCreate(
            name=POOL,
            type="process",
            paused=True,
            config={"working_dir": str(runs_dir), "allowed_source_roots": [str(EXAMPLES)]},
        ),
    )
    if method == "store":
        for i in range(n):
            dep = _deployment(i, DUE_CRON if i in _due_indices(n, due) else IDLE_CRON)
            store.upsert_deployment(dep, schedule_records(dep, DEPLOYED_AT))
    else:
        batch_d: list[dict[str, Any]] = []
        batch_s: list[dict[str, Any]] = []
        with store.engine.begin() as c:
            for drow, srows in _rows(n, due):
                batch_d.append(drow)
                batch_s.extend(srows)
                if len(batch_d) >= 5000:
                    c.execute(insert(t.deployments), batch_d)
                    c.execute(insert(t.schedules), batch_s)
                    batch_d, batch_s = [], []
            if batch_d:
                c.execute(insert(t.deployments), batch_d)
                c.execute(insert(t.schedules), batch_s)
    _check_database(store, n, due)
    store.close()
    return time.perf_counter() - t0


def _check_database(store: SqlStore, n: int, due: int) -> None:
    """The bulk rows read back through the store API like deployed ones."""
    horizon = NOW + timedelta(seconds=Settings().schedule_horizon_seconds)
    found = store.due_schedules(horizon, n + 1)
    assert len(found) == due, (len(found), due)
    rec, dep = found[0]
    assert rec.next_fire_at == NOW.replace(second=0) and dep.work_pool == POOL
    with store.engine.connect() as c:
        count = c.execute(select(func.count()).select_from(t.deployments)).scalar_one()
    assert count == n, (count, n)
    due_at = _due_indices(n, due)
    idle_index = next((i for i in range(n) if i not in due_at), None)
    if idle_index is not None:
        idle = store.get_schedules(str(uuid.UUID(int=idle_index + 1)))
        assert idle[0].next_fire_at == datetime(2026, 6, 2, 3, tzinfo=UTC), idle


def copy_database(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


# -- measurement ---------------------------------------------------------------------------
@dataclass
class Timers:
    seconds: dict[str, float] = field(default_factory=dict)

    def wrap(self, obj: object, attr: str, name: str) -> None:
        """Time every call of ``obj.attr`` (shadowed on the instance) under ``name``."""
        inner: Callable[..., Any] = getattr(obj, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

        setattr(obj, attr, timed)

    def get(self, name: str) -> float:
        return self.seconds.get(name, 0.0)


@dataclass
class TickResult:
    wall: float
    report: TickReport
    timers: Timers
    submit_seconds: float
    idle_wall: float


def open_services(url: str, home: Path, variant: str) -> Services:
    store = SqlStore(url)
    store.migrate()
    svc = build_services(_settings(home), store, FixedClock(NOW))
    if variant == "dispatch":
        svc.store.update_pool(POOL, {"type": BENCH_TYPE, "paused": False, "config": {}}, NOW)
    return svc


def measure_tick(
    dbs: Databases,
    template: str,
    work: Path,
    variant: str,
    profile: cProfile.Profile | None = None,
) -> TickResult:
    db = dbs.copy(template)
    svc = open_services(db, work, variant)
    timers = Timers()
    sched, disp, rec = svc.scheduler, svc.dispatcher, svc.scheduler.reconciler
    timers.wrap(sched, "materialise", "materialise")
    timers.wrap(svc.store, "due_schedules", "due_schedules")
    timers.wrap(svc.store, "materialise", "store.materialise")
    timers.wrap(sched, "skip_missed", "skip_missed")
    timers.wrap(disp, "dispatch_due", "dispatch")
    timers.wrap(svc.store, "claim_due_runs", "claim")
    timers.wrap(rec, "run", "reconcile")
    timers.wrap(rec, "sweep_orphans", "sweep")
    NullProvisioner.submit_seconds, NullProvisioner.submits = 0.0, 0
    try:
        if profile is not None:
            profile.enable()
        t0 = time.perf_counter()
        report = sched.tick(NOW)
        wall = time.perf_counter() - t0
        if profile is not None:
            profile.disable()
        submit_seconds = NullProvisioner.submit_seconds
        first = Timers(dict(timers.seconds))  # the next tick must not add to these
        # The next tick, 5 s later: nothing newly due.
        svc.clock = disp.clock = FixedClock(NOW + timedelta(seconds=5))
        t0 = time.perf_counter()
        sched.tick(NOW + timedelta(seconds=5))
        idle_wall = time.perf_counter() - t0
    finally:
        svc.store.close()
    dbs.drop(db)
    return TickResult(wall, report, first, submit_seconds, idle_wall)


def _check(res: TickResult, due: int, variant: str, min_runs: int) -> None:
    r = res.report
    assert r.schedules == due, f"{r.schedules} schedules materialised, expected {due}"
    assert r.materialised == due * min_runs, f"{r.materialised} runs, expected {due * min_runs}"
    assert r.skipped == 0, r.skipped
    want = due if variant == "dispatch" else 0
    assert r.dispatched == want, f"dispatched {r.dispatched}, expected {want}"


@dataclass
class Row:
    label: str
    n: int
    due: int
    variant: str
    setup: float
    results: list[TickResult]

    def med(self, fn: Callable[[TickResult], float]) -> float:
        return median([fn(r) for r in self.results])


@dataclass
class Case:
    label: str
    n: int
    due: int
    dir: Path
    template: str
    setup: float
    dbs: Databases


def build_case(label: str, n: int, due: int, dbs: Databases, method: str) -> Case:
    case = Path(tempfile.mkdtemp(prefix=f"n{n}-due{due}-", dir=dbs.base))
    template = dbs.new()
    setup = build_database(template, case, n, due, method)
    print(f"  built {label}: {n:,} deployments, {due:,} due, setup {setup:.1f} s", flush=True)
    return Case(label, n, due, case, template, setup, dbs)


def run_cases(cases: list[Case], variants: list[str], repeats: int) -> list[Row]:
    """Repetitions interleaved across cases, so background noise spreads evenly."""
    min_runs = Settings().schedule_min_runs
    results: dict[tuple[int, str], list[TickResult]] = {}
    for _ in range(repeats):
        for i, case in enumerate(cases):
            for variant in variants:
                res = measure_tick(case.dbs, case.template, case.dir, variant)
                _check(res, case.due, variant, min_runs)
                results.setdefault((i, variant), []).append(res)
    return [
        Row(case.label, case.n, case.due, variant, case.setup, results[(i, variant)])
        for i, case in enumerate(cases)
        for variant in variants
    ]


def warm_up(dbs: Databases, variants: list[str]) -> None:
    """One small database, a tick per variant: imports, statement caches, cron plans."""
    case = Path(tempfile.mkdtemp(prefix="warmup-", dir=dbs.base))
    template = dbs.new()
    build_database(template, case, 1000, 10, "bulk")
    for variant in variants:
        measure_tick(dbs, template, case, variant)
    dbs.drop(template)


# -- output -------------------------------------------------------------------------------------
def print_results(rows: list[Row], repeats: int) -> None:
    print()
    print(f"Wall time of the first tick at {NOW:%Y-%m-%d %H:%M:%S}Z (median of {repeats})")
    print(
        "  ms/due run = tick / due schedules (one run due now each); next tick = a second "
        "tick 5 s later, nothing newly due\n  (with 'dispatch' it reconciles the runs the "
        "first tick started, which stay RUNNING)"
    )
    print(
        table(
            [
                "case",
                "pool",
                "deployments",
                "due sched",
                "runs mat.",
                "dispatched",
                "setup s",
                "tick ms",
                "min..max ms",
                "ms/due run",
                "next tick ms",
            ],
            [
                [
                    r.label,
                    r.variant,
                    f"{r.n:,}",
                    f"{r.due:,}",
                    f"{r.results[0].report.materialised:,}",
                    f"{r.results[0].report.dispatched:,}",
                    f"{r.setup:.1f}",
                    ms(r.med(lambda x: x.wall)),
                    f"{ms(min(x.wall for x in r.results))}..{ms(max(x.wall for x in r.results))}",
                    f"{r.med(lambda x: x.wall) * 1000 / r.due:.2f}",
                    ms(r.med(lambda x: x.idle_wall)),
                ]
                for r in rows
            ],
        )
    )
    print()
    print("Where the first tick's time goes (median ms; 'plan' = cron arithmetic and model")
    print("building in Scheduler._plan; 'other' = meta reads/writes and timing overhead)")
    phase_rows = []
    for r in rows:
        due_q = r.med(lambda x: x.timers.get("due_schedules"))
        store_m = r.med(lambda x: x.timers.get("store.materialise"))
        plan = r.med(
            lambda x: (
                x.timers.get("materialise")
                - x.timers.get("due_schedules")
                - x.timers.get("store.materialise")
            )
        )
        other = r.med(
            lambda x: (
                x.wall
                - x.timers.get("materialise")
                - x.timers.get("skip_missed")
                - x.timers.get("dispatch")
                - x.timers.get("reconcile")
                - x.timers.get("sweep")
            )
        )
        phase_rows.append(
            [
                r.label,
                r.variant,
                ms(due_q),
                ms(plan),
                ms(store_m),
                ms(r.med(lambda x: x.timers.get("skip_missed"))),
                ms(r.med(lambda x: x.timers.get("claim"))),
                ms(r.med(lambda x: x.timers.get("dispatch") - x.timers.get("claim"))),
                ms(r.med(lambda x: x.timers.get("reconcile"))),
                ms(r.med(lambda x: x.timers.get("sweep"))),
                ms(other),
            ]
        )
    print(
        table(
            [
                "case",
                "pool",
                "due query",
                "plan",
                "insert runs",
                "skip missed",
                "claim",
                "submit+record",
                "reconcile",
                "orphan sweep",
                "other",
            ],
            phase_rows,
        )
    )
    dispatch_rows = [r for r in rows if r.variant == "dispatch"]
    if dispatch_rows:
        print()
        print("Dispatch overhead per run beyond the provider call (budget: a few ms)")
        print(
            table(
                [
                    "case",
                    "dispatched",
                    "dispatch ms",
                    "provider ms",
                    "overhead ms/run",
                    "reconcile ms/active run",
                ],
                [
                    [
                        r.label,
                        f"{r.results[0].report.dispatched:,}",
                        ms(r.med(lambda x: x.timers.get("dispatch"))),
                        ms(r.med(lambda x: x.submit_seconds), 2),
                        f"{r.med(lambda x: (x.timers.get('dispatch') - x.submit_seconds) / max(x.report.dispatched, 1)) * 1000:.3f}",  # noqa: E501
                        f"{r.med(lambda x: x.timers.get('reconcile') / max(x.report.reconcile.checked, 1)) * 1000:.3f}",  # noqa: E501
                    ]
                    for r in dispatch_rows
                ],
            )
        )


def print_scaling(rows: list[Row]) -> None:
    by = {(r.label, r.variant): r for r in rows}
    labels = [r.label for r in rows if r.variant == rows[0].variant]
    if len(labels) < 2:
        return
    small, large = labels[0], labels[1]
    print()
    print(f"Scaling {large} / {small}: time ratio against the ratios of due work and of size")
    out = []
    for variant in dict.fromkeys(r.variant for r in rows):
        for label in labels[1:]:
            a, b = by[(small, variant)], by[(label, variant)]
            ratio = b.med(lambda x: x.wall) / a.med(lambda x: x.wall)
            due_ratio, n_ratio = b.due / a.due, b.n / a.n
            if abs(ratio - due_ratio) <= abs(ratio - n_ratio) or due_ratio == n_ratio:
                follows = "due work" if due_ratio != n_ratio else "n/a (both grow alike)"
            else:
                follows = "DEPLOYMENTS"
            out.append(
                [
                    f"{label} / {small}",
                    variant,
                    f"{ratio:.2f}",
                    f"{due_ratio:.0f}",
                    f"{n_ratio:.0f}",
                    follows,
                ]
            )
    print(table(["cases", "pool", "tick ratio", "due ratio", "size ratio", "follows"], out))
    for variant in dict.fromkeys(r.variant for r in rows):
        for label in labels[1:]:
            a, b = by[(small, variant)], by[(label, variant)]
            if a.due != b.due or a.n == b.n:
                continue
            ratio = b.med(lambda x: x.wall) / a.med(lambda x: x.wall)
            verdict = (
                "cost follows due work, not deployments"
                if ratio < 2
                else "COST GROWS WITH THE NUMBER OF DEPLOYMENTS"
            )
            print(
                f"  {variant}: {b.n / a.n:.0f}x the deployments at the same {a.due:,} due "
                f"schedules costs {ratio:.2f}x -> {verdict}"
            )


def profile_tick(dbs: Databases, n: int, due: int, variant: str, top: int) -> None:
    case = Path(tempfile.mkdtemp(prefix="profile-", dir=dbs.base))
    template = dbs.new()
    build_database(template, case, n, due, "bulk")
    prof = cProfile.Profile()
    measure_tick(dbs, template, case, variant, profile=prof)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("cumulative").print_stats(top)
    print()
    print(f"cProfile of one first tick: {n:,} deployments, {due:,} due, pool {variant}")
    print(buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated deployment counts")
    ap.add_argument("--due-percent", type=float, default=1.0, help="share of deployments due")
    ap.add_argument("--repeats", type=int, default=5, help="measured ticks per case (median)")
    ap.add_argument("--variants", default="paused,dispatch", help="paused and/or dispatch")
    ap.add_argument(
        "--no-control", action="store_true", help="skip the fixed-due-count control case"
    )
    ap.add_argument("--setup", choices=["bulk", "store"], default="bulk")
    ap.add_argument("--stores", default="sqlite,postgres", help="sqlite and/or postgres")
    ap.add_argument("--profile", action="store_true", help="cProfile one tick at the largest N")
    ap.add_argument("--profile-top", type=int, default=30)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    variants = [v for v in args.variants.split(",") if v]
    assert set(variants) <= {"paused", "dispatch"}, variants
    stores = [v for v in args.stores.split(",") if v]
    assert set(stores) <= {"sqlite", "postgres"}, stores

    settings = Settings()
    print("pushpool tick benchmark")
    print(f"  machine: {load_note()} at start")
    print(
        f"  stores: {', '.join(stores)} (SQLite in a temp dir; PostgreSQL 127.0.0.1, fsync "
        f"off), clock fixed at {NOW:%H:%M:%S}Z; horizon "
        f"{settings.schedule_horizon_seconds} s, schedule_min_runs {settings.schedule_min_runs}, "
        f"dispatch batch {settings.dispatch_batch_size}"
    )
    print(
        "  pools: 'paused' = paused process pool (nothing dispatched, no process spawned); "
        "'dispatch' = no-op 'bench' provisioner (submit returns at once, status RUNNING)"
    )
    print(
        f"  each due schedule materialises {settings.schedule_min_runs} runs (today's, due now, "
        "and the next two days': schedule_min_runs), so 1 run per due schedule is dispatched"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="pushpool-bench-tick-") as tmp:
            for kind in stores:
                server = shared_server() if kind == "postgres" else None
                base = Path(tmp) / kind
                base.mkdir()
                measure_store(Databases(kind, base, server), sizes, variants, args)
    finally:
        stop_shared_server()
    print()
    print(f"machine: {load_note()} at the end")


def measure_store(
    dbs: Databases, sizes: list[int], variants: list[str], args: argparse.Namespace
) -> None:
    print()
    print(f"== {dbs.kind} ==", flush=True)
    warm_up(dbs, variants)
    cases = []
    for n in sizes:
        due = max(1, round(n * args.due_percent / 100))
        cases.append(build_case(f"{dbs.kind} {n // 1000}k", n, due, dbs, args.setup))
    if not args.no_control and len(sizes) >= 2:
        n, due = max(sizes), max(1, round(min(sizes) * args.due_percent / 100))
        label = f"{dbs.kind} {n // 1000}k, {due} due"
        cases.append(build_case(label, n, due, dbs, args.setup))
    print(f"  measuring: {args.repeats} repetitions, interleaved across cases", flush=True)
    rows = run_cases(cases, variants, args.repeats)
    for case in cases:
        dbs.drop(case.template)
    print_results(rows, args.repeats)
    main_rows = [r for r in rows if "," not in r.label]
    print_scaling(main_rows)
    smallest = f"{dbs.kind} {min(sizes) // 1000}k"
    control = [r for r in rows if r.label == smallest or "," in r.label]
    if len(control) > len(variants):
        print_scaling(control)
    if args.profile:
        n = max(sizes)
        due = max(1, round(n * args.due_percent / 100))
        profile_tick(dbs, n, due, variants[-1], args.profile_top)


if __name__ == "__main__":
    main()
