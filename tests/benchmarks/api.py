"""Benchmark: the create-run API under load, over real HTTP and in-process.

    python -m tests.benchmarks.api [--requests 2000] [--warmup 100] [--clients 1,8]

Server: ``python -m tests.benchmarks._server`` in a subprocess (so its memory can be read
from /proc), uvicorn on a free 127.0.0.1 port, the in-process scheduler off; its store is
SQLite in a temporary home (app ``pushpool``) and, with ``--stores sqlite,postgres`` (the
default), PostgreSQL on a server this script starts and stops (app ``pushpool/pg``, one
connection pool of the default size, 5 + 10 overflow). It has an admin key, a *paused*
``process`` pool ``bench`` and one deployment on it, so each
``POST /api/deployments/{id}/runs`` (body ``{}``, Bearer key) does the whole create-run
path - key lookup, deployment read, run insert, the inline dispatch attempt (which claims
nothing: the pool is paused) - and spawns no process.

Load: C client threads in this process, each with its own keep-alive ``httpx.Client``,
each sending its share of the requests back to back. The first ``--warmup`` requests
(split across clients) are excluded; then all clients start together at a barrier.
Latency is per request, client-side (send to full response read). Any status but 201, and
any exception, is an error.

Compared against, with the same client code:
* ``bare``: a FastAPI app with the same route shape (a sync handler) returning a
  constant JSON, under the same uvicorn: the framework + HTTP + client floor.
* ``in-process``: the same apps called through ``httpx.ASGITransport`` (no sockets, no
  uvicorn; asyncio tasks instead of threads).

This machine has few cores: the load generator competes with the server for them, so
the CPU time each side used per request is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from ._common import (
    REPO,
    load_note,
    median,
    mib,
    ms,
    percentile,
    proc_cpu_seconds,
    proc_status_kib,
    table,
)
from ._server import bare_app, pushpool_app

OK = 201


@dataclass
class LoadResult:
    target: str
    app: str
    clients: int
    latencies: list[float]
    wall: float
    errors: Counter[str] = field(default_factory=Counter)
    warmup_errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float | None = None
    client_cpu: float | None = None

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.requests / self.wall


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    api_key: str
    deployment_id: str

    @property
    def pid(self) -> int:
        return self.proc.pid


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _error(resp: httpx.Response) -> str:
    return f"HTTP {resp.status_code}: {resp.text[:120]}"


def _exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:160]


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- the server process ----------------------------------------------------------------------
@contextlib.contextmanager
def server_process(
    home: Path, *, bare: bool, max_seconds: float, database_url: str | None = None
) -> Iterator[Server]:
    info = home.parent / f"{home.name}.json"
    cmd = [sys.executable, "-m", "tests.benchmarks._server", "--home", str(home)]
    cmd += ["--info", str(info), "--max-seconds", str(max_seconds)]
    if bare:
        cmd.append("--bare")
    if database_url:
        cmd += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHPOOL_")}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 60
        while not info.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the benchmark server did not start (exit {proc.poll()})")
            time.sleep(0.05)
        data = json.loads(info.read_text())
        url = f"http://127.0.0.1:{data['port']}"
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark server did not answer /api/health")
            time.sleep(0.05)
        yield Server(proc, url, data["api_key"], data["deployment_id"])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


class RssMonitor:
    """Samples a process's VmRSS every ``interval`` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            kib = proc_status_kib(self.pid, "VmRSS")
            if kib is not None:
                self.peak_kib = max(self.peak_kib, kib)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# -- load over HTTP ----------------------------------------------------------------------------
def load_http(server: Server, app: str, clients: int, total: int, warmup: int) -> LoadResult:
    path = f"/api/deployments/{server.deployment_id}/runs"
    headers = {"Authorization": f"Bearer {server.api_key}"}
    barrier = threading.Barrier(clients + 1)
    lat: list[list[float]] = [[] for _ in range(clients)]
    errs: list[Counter[str]] = [Counter() for _ in range(clients)]
    warm_errs: list[Counter[str]] = [Counter() for _ in range(clients)]
    warm_n, meas_n = _split(warmup, clients), _split(total, clients)

    def one(client: httpx.Client, errors: Counter[str]) -> None:
        try:
            resp = client.post(path, json={})
        except httpx.HTTPError as exc:
            errors[_exception(exc)] += 1
            return
        if resp.status_code != OK:
            errors[_error(resp)] += 1

    def worker(i: int) -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            for _ in range(warm_n[i]):
                one(client, warm_errs[i])
            barrier.wait()
            for _ in range(meas_n[i]):
                t0 = time.perf_counter()
                one(client, errs[i])
                lat[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for th in threads:
        th.start()
    barrier.wait(timeout=120)
    cpu_server0, cpu_client0 = proc_cpu_seconds(server.pid), _cpu_self()
    t0 = time.perf_counter()
    for th in threads:
        th.join(timeout=600)
    wall = time.perf_counter() - t0
    cpu_server1, cpu_client1 = proc_cpu_seconds(server.pid), _cpu_self()
    res = LoadResult("uvicorn", app, clients, [x for xs in lat for x in xs], wall)
    for c in errs:
        res.errors.update(c)
    for c in warm_errs:
        res.warmup_errors.update(c)
    if cpu_server0 is not None and cpu_server1 is not None:
        res.server_cpu = cpu_server1 - cpu_server0
    res.client_cpu = cpu_client1 - cpu_client0
    return res


# -- load in process (ASGITransport) --------------------------------------------------------------
async def _load_asgi(
    app: FastAPI, deployment_id: str, key: str, label: str, clients: int, total: int, warmup: int
) -> LoadResult:
    path = f"/api/deployments/{deployment_id}/runs"
    transport = httpx.ASGITransport(app=app)
    res = LoadResult("in-process", label, clients, [], 0.0)
    barrier = asyncio.Barrier(clients + 1)
    warm_n, meas_n = _split(warmup, clients), _split(total, clients)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {key}"}
    ) as client:

        async def one(errors: Counter[str]) -> None:
            try:
                resp = await client.post(path, json={})
            except httpx.HTTPError as exc:
                errors[_exception(exc)] += 1
                return
            if resp.status_code != OK:
                errors[_error(resp)] += 1

        spans: list[tuple[float, float]] = []

        async def worker(i: int) -> None:
            for _ in range(warm_n[i]):
                await one(res.warmup_errors)
            await barrier.wait()
            # Each worker times itself: a request that never yields (an async route with
            # nothing to await) may run all of them before the main task resumes.
            start = time.perf_counter()
            for _ in range(meas_n[i]):
                t0 = time.perf_counter()
                await one(res.errors)
                res.latencies.append(time.perf_counter() - t0)
            spans.append((start, time.perf_counter()))

        tasks = [asyncio.create_task(worker(i)) for i in range(clients)]
        cpu0 = _cpu_self()
        await barrier.wait()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
        res.wall = max(end for _, end in spans) - min(start for start, _ in spans)
        res.client_cpu = _cpu_self() - cpu0  # client and server (and warm-up): one process
    return res


def load_asgi(
    app: FastAPI, deployment_id: str, key: str, label: str, clients: int, total: int, warmup: int
) -> LoadResult:
    return asyncio.run(_load_asgi(app, deployment_id, key, label, clients, total, warmup))


# -- where the create-run time goes (direct calls, no HTTP) ------------------------------------
def breakdown(app: FastAPI, key: str, deployment_id: str, n: int) -> list[list[str]]:
    """Median cost of each step the create-run request makes, called directly."""
    from service.models import FlowRun
    from service.runs import RunCreate, create_run
    from service.security import hash_secret
    from service.services import Services

    svc: Services = app.state.services
    run, _ = create_run(svc, deployment_id, RunCreate())

    def fresh() -> FlowRun:
        return run.model_copy(update={"id": str(uuid.uuid4())})

    steps: list[tuple[str, Callable[[], object]]] = [
        ("auth: store.find_api_key(sha256(key))", lambda: svc.store.find_api_key(hash_secret(key))),
        ("store.get_deployment", lambda: svc.store.get_deployment(deployment_id)),
        ("store.create_run (insert run + history)", lambda: svc.store.create_run(fresh())),
        (
            "dispatcher.dispatch_due(1, [id]) on the paused pool",
            lambda: svc.dispatcher.dispatch_due(1, run_ids=[run.id]),
        ),
        (
            "service.runs.create_run (all of the above but auth)",
            lambda: create_run(svc, deployment_id, RunCreate()),
        ),
        (
            "FlowRun validate + JSON (like the response step)",
            lambda: FlowRun.model_validate(run.model_dump()).model_dump_json(),
        ),
    ]
    gc.collect()
    for _, fn in steps:
        fn()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(n):  # round robin, so drift on a shared machine hits every step alike
        for i, (_, fn) in enumerate(steps):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [
        [label, ms(median(ts), 3), ms(percentile(ts, 95), 3)]
        for (label, _), ts in zip(steps, times, strict=True)
    ]


# -- output -------------------------------------------------------------------------------------
def _per_req(cpu: float | None, n: int) -> str:
    return "n/a" if cpu is None else ms(cpu / n, 2)


def print_results(results: list[LoadResult], rss: list[list[str]], total: int, warmup: int) -> None:
    print()
    print(
        f"POST /api/deployments/{{id}}/runs: {total:,} measured requests per row "
        f"(after {warmup} warm-up); latency client-side, percentiles over all requests"
    )
    rows = []
    for r in results:
        lat = r.latencies
        rows.append(
            [
                r.target,
                r.app,
                r.clients,
                f"{r.requests:,}",
                f"{r.rate:,.0f}",
                ms(percentile(lat, 50), 2),
                ms(percentile(lat, 95), 2),
                ms(percentile(lat, 99), 2),
                ms(max(lat), 1),
                sum(r.errors.values()),
                _per_req(r.server_cpu, r.requests),
                _per_req(r.client_cpu, r.requests),
            ]
        )
    print(
        table(
            [
                "transport",
                "app",
                "clients",
                "requests",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "errors",
                "server CPU ms/req",
                "client CPU ms/req",
            ],
            rows,
        )
    )
    print("  (in-process rows: 'client CPU' is client and app together - one process)")
    distinct: Counter[str] = Counter()
    for r in results:
        for msg, n in r.errors.items():
            distinct[f"[{r.target} {r.app} x{r.clients}] {msg}"] += n
        for msg, n in r.warmup_errors.items():
            distinct[f"[{r.target} {r.app} x{r.clients}, warm-up] {msg}"] += n
    print()
    if distinct:
        print("Distinct errors:")
        for msg, n in distinct.most_common():
            print(f"  {n:6d}  {msg}")
    else:
        print("Distinct errors: none")
    print()
    print("Server memory (MiB; VmRSS from /proc/<pid>/status, VmHWM = peak RSS since start)")
    print(
        table(
            ["server", "idle after start", "after 1 client", "peak during 8 clients", "VmHWM"],
            rss,
        )
    )


def print_budget(results: list[LoadResult]) -> None:
    live = [r for r in results if r.target == "uvicorn" and r.app == "pushpool"]
    if not live:
        return
    worst = max(live, key=lambda r: r.clients)
    rate, p99 = worst.rate, percentile(worst.latencies, 99) * 1000
    errors = sum(worst.errors.values())
    print()
    print("Budget: several hundred req/s, p99 well under 50 ms, zero errors under 8 clients")
    print(
        f"  pushpool over HTTP, {worst.clients} clients: {rate:,.0f} req/s "
        f"[{'ok' if rate >= 300 else 'BELOW'}: >= 300], "
        f"p99 {p99:.1f} ms [{'ok' if p99 < 50 else 'OVER'}: < 50], "
        f"{errors} errors [{'ok' if errors == 0 else 'FAIL'}]"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="measured requests per row")
    ap.add_argument("--warmup", type=int, default=100, help="excluded requests per row")
    ap.add_argument("--clients", default="1,8", help="comma-separated concurrency levels")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare FastAPI floor")
    ap.add_argument("--stores", default="sqlite,postgres", help="sqlite and/or postgres")
    ap.add_argument("--no-inprocess", action="store_true", help="skip the ASGITransport rows")
    ap.add_argument("--breakdown-calls", type=int, default=300, help="calls per step timed")
    ap.add_argument(
        "--max-seconds", type=float, default=600, help="server processes stop by then at most"
    )
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",") if c]
    top = max(levels)

    have = [m for m in ("httptools", "uvloop") if importlib.util.find_spec(m) is not None]
    print("pushpool API benchmark")
    print(f"  machine: {load_note()} at start")
    print(
        f"  {os.cpu_count()} CPUs; uvicorn HTTP/loop: "
        f"{'+'.join(have) if have else 'h11 + asyncio (httptools and uvloop not installed)'}"
    )
    stores = [s for s in args.stores.split(",") if s]
    print(
        f"  server: {' and '.join(stores)} store, paused 'process' pool (no process spawned), "
        "scheduler off"
    )
    results: list[LoadResult] = []
    rss: list[list[str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="pushpool-bench-api-") as tmp,
        _postgres("postgres" in stores) as pg,
    ):
        base = Path(tmp)
        apps: list[tuple[str, bool, str | None]] = []
        if "sqlite" in stores:
            apps.append(("pushpool", False, None))
        if "postgres" in stores:
            apps.append(("pushpool/pg", False, _migrated(pg.new_database())))
        apps += [] if args.no_bare else [("bare", True, None)]
        for name, bare, url in apps:
            home = base / name.replace("/", "-")
            with server_process(
                home, bare=bare, max_seconds=args.max_seconds, database_url=url
            ) as srv:
                idle = proc_status_kib(srv.pid, "VmRSS")
                after_one: int | None = None
                peak: int | None = None
                for clients in levels:
                    print(f"  {name} over HTTP, {clients} client(s)...", flush=True)
                    if clients == top:
                        with RssMonitor(srv.pid) as mon:
                            res = load_http(srv, name, clients, args.requests, args.warmup)
                        peak = mon.peak_kib
                    else:
                        res = load_http(srv, name, clients, args.requests, args.warmup)
                    if clients == 1:
                        after_one = proc_status_kib(srv.pid, "VmRSS")
                    results.append(res)
                hwm = proc_status_kib(srv.pid, "VmHWM")
                rss.append([name, mib(idle), mib(after_one), mib(peak), mib(hwm)])
        if not args.no_inprocess:
            inproc: list[tuple[str, FastAPI, str, str]] = []
            app, pp_key, pp_dep = pushpool_app(base / "inprocess", 4300)
            inproc.append(("pushpool", app, pp_key, pp_dep))
            if not args.no_bare:
                inproc.append(("bare", bare_app(), "none", "bare"))
            for name, asgi, key, dep in inproc:
                for clients in levels:
                    print(f"  {name} in-process, {clients} client(s)...", flush=True)
                    results.append(
                        load_asgi(asgi, dep, key, name, clients, args.requests, args.warmup)
                    )
            steps = breakdown(app, pp_key, pp_dep, args.breakdown_calls)
            app.state.services.store.close()
    print_results(results, rss, args.requests, args.warmup)
    print_budget(results)
    if not args.no_inprocess:
        print()
        print(
            f"Where pushpool's create-run time goes: each step called directly in this process, "
            f"{args.breakdown_calls} calls (SQLite, paused pool)"
        )
        print(table(["step", "median ms", "p95 ms"], steps))
        print(
            "  The rest of the server's CPU per request is uvicorn/h11 + FastAPI (routing, "
            "dependencies - sync ones run in the threadpool - body and response models)."
        )
    print()
    print(f"machine: {load_note()} at the end")


@contextlib.contextmanager
def _postgres(wanted: bool) -> Iterator[Any]:
    """The PostgreSQL test server (tests/support/postgres.py) if ``wanted``, stopped on
    the way out."""
    if not wanted:
        yield None
        return
    sys.path.insert(0, str(REPO / "tests"))
    from support.postgres import shared_server, stop_shared_server

    try:
        yield shared_server()
    finally:
        stop_shared_server()


def _migrated(url: str) -> str:
    from service.store.sql import SqlStore

    store = SqlStore(url)
    store.migrate()
    store.close()
    return url


if __name__ == "__main__":
    main()
