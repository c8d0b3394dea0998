"""The ``process`` pool: each flow run is a local subprocess running the runner.

The reference implementation of :class:`~provisioners.base.Provisioner` and the
embedded default. Each attempt gets a working directory ``<root>/<run id>-<attempt>``
holding ``pid.json`` (what was started) and ``output.log`` (the runner's own output).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from provisioners.base import (
    InfraRef,
    InfraState,
    InfraStatus,
    JobVariables,
    PoolConfig,
    Provisioner,
    SubmitRequest,
)
from provisioners.errors import ProvisionerError

RUNNER_MODULE = "runner_image"
#: Parent-environment variables a flow must never inherit (the service's own secrets).
_SCRUBBED_PREFIXES = ("PUSHPOOL_",)


class ProcessPoolConfig(PoolConfig):
    working_dir: str | None = Field(
        default=None, description="Absolute directory for per-run working directories"
    )

    @field_validator("working_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isabs(value):
            raise ValueError("must be an absolute path")
        return value

    python: str | None = Field(default=None, description="Interpreter; default: the server's")


class ProcessJobVariables(JobVariables):
    env: dict[str, str] = Field(default_factory=dict)
    python: str | None = None
    command: list[str] | None = Field(
        default=None, min_length=1, description="Run this instead of `python -m runner_image`"
    )


# Children started by this process, by pid, so their exit codes can be collected.
_children: dict[int, subprocess.Popen[bytes]] = {}
_children_lock = threading.Lock()


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19]) if fields[0] != "Z" else None


def _alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path("/proc").is_dir():
        ticks = _start_ticks(pid)
        return ticks is not None and (start_ticks is None or ticks == start_ticks)
    return True


def _describe(returncode: int) -> tuple[int, str]:
    if returncode < 0:
        sig = signal.Signals(-returncode)
        return 128 - returncode, f"terminated by {sig.name}"
    return returncode, f"exited with code {returncode}"


class ProcessProvisioner(Provisioner):
    type = "process"
    config_model = ProcessPoolConfig
    job_variables_model = ProcessJobVariables
    source_types = frozenset({"local", "git"})  # no container image to carry the code
    config: ProcessPoolConfig

    def __init__(self, pool_name: str, config: dict[str, Any]) -> None:
        super().__init__(pool_name, config)
        root = self.config.working_dir or os.path.join(tempfile.gettempdir(), "pushpool-runs")
        self.root = Path(root) / pool_name

    # -- helpers ------------------------------------------------------------------
    def _dir(self, key: str) -> Path:
        return self.root / key

    def _ref_from(self, run_dir: Path) -> InfraRef | None:
        try:
            data = json.loads((run_dir / "pid.json").read_text())
        except (OSError, ValueError):
            return None
        return InfraRef(type=self.type, id=run_dir.name, data=data)

    def _environment(self, request: SubmitRequest, job: ProcessJobVariables) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        env.update(job.env)
        env.update(request.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    # -- the interface -----------------------------------------------------------------
    def find(self, request: SubmitRequest) -> InfraRef | None:
        return self._ref_from(self._dir(request.idempotency_key))

    def submit(self, request: SubmitRequest) -> InfraRef:
        job = ProcessJobVariables.model_validate(request.job_variables)
        run_dir = self._dir(request.idempotency_key)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            claim = os.open(run_dir / "submit.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self._wait_for_ref(run_dir)
        except OSError as exc:
            raise ProvisionerError(f"cannot create working directory {run_dir}: {exc}") from exc
        os.close(claim)
        python = job.python or self.config.python or sys.executable
        argv = job.command or [python, "-m", RUNNER_MODULE]
        try:
            with open(run_dir / "output.log", "ab") as out:
                proc = subprocess.Popen(
                    argv,
                    cwd=run_dir,
                    env=self._environment(request, job),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            (run_dir / "submit.claim").unlink(missing_ok=True)
            raise ProvisionerError(f"cannot start {argv[0]}: {exc.strerror}") from exc
        with _children_lock:
            _children[proc.pid] = proc
        data = {
            "run_id": request.run_id,
            "pid": proc.pid,
            "start_ticks": _start_ticks(proc.pid),
            "dir": str(run_dir),
        }
        tmp = run_dir / "pid.json.tmp"
        tmp.write_text(json.dumps(data))
        tmp.replace(run_dir / "pid.json")
        return InfraRef(type=self.type, id=run_dir.name, data=data)

    def _wait_for_ref(self, run_dir: Path, timeout: float = 5.0) -> InfraRef:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ref = self._ref_from(run_dir)
            if ref is not None:
                return ref
            time.sleep(0.02)
        raise ProvisionerError(
            f"a concurrent submit of {run_dir.name} did not finish", transient=True
        )

    def status(self, ref: InfraRef) -> InfraStatus:
        pid = int(ref.data["pid"])
        with _children_lock:
            proc = _children.get(pid)
        if proc is not None:
            rc = proc.poll()
            if rc is None:
                return InfraStatus(InfraState.RUNNING)
            code, reason = _describe(rc)
            return InfraStatus(InfraState.EXITED, exit_code=code, reason=f"process {reason}")
        if _alive(pid, ref.data.get("start_ticks")):
            return InfraStatus(InfraState.RUNNING)
        if not Path(ref.data["dir"]).exists():
            return InfraStatus(InfraState.MISSING, reason="working directory is gone")
        return InfraStatus(
            InfraState.EXITED, reason="process exited (not started by this server: no exit code)"
        )

    def _signal(self, ref: InfraRef, sig: signal.Signals) -> None:
        pid = int(ref.data["pid"])
        if not _alive(pid, ref.data.get("start_ticks")):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def cancel(self, ref: InfraRef, grace_seconds: float) -> None:
        self._signal(ref, signal.SIGTERM)
        timer = threading.Timer(grace_seconds, self._signal, args=(ref, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    def teardown(self, ref: InfraRef) -> None:
        pid = int(ref.data["pid"])
        self._signal(ref, signal.SIGKILL)
        with _children_lock:
            proc = _children.pop(pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        shutil.rmtree(ref.data["dir"], ignore_errors=True)

    def list_orphans(self, live_run_ids: set[str]) -> list[InfraRef]:
        if not self.root.is_dir():
            return []
        orphans = []
        for run_dir in sorted(self.root.iterdir()):
            run_id = run_dir.name.rsplit("-", 1)[0]
            if run_id in live_run_ids:
                continue
            ref = self._ref_from(run_dir)
            if ref is not None:
                orphans.append(ref)
        return orphans
