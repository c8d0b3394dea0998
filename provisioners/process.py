"""The ``process`` pool: each flow run is a local subprocess running the runner.

The reference implementation of :class:`~provisioners.base.Provisioner` and the
embedded default. Each attempt gets a fresh working directory ``<root>/<run id>-<attempt>``
(mode 0700; ``<root>`` defaults to ``$PUSHPOOL_HOME/runs/<pool>``) holding ``pid.json``
(what was started, with the process's start time), ``output.log`` (the runner's own
output) and ``outcome.json`` (the runner's outcome record, read when no report came).

Isolation: the flow's environment is an allowlist (:data:`ALLOWED_ENV`) plus the pool's
and the deployment's ``env`` plus the runner's own variables, never the server's
environment. What runs host commands or picks host paths (``command``, ``python``, and
env keys such as ``LD_*``/``PYTHON*``/``PATH``) is pool config, set by an admin; job
variables may carry it only when the pool config says ``allow_job_commands: true``. A
``local`` source must lie under the pool's ``allowed_source_roots`` (symlinks resolved, at
deploy and again in the runner); a pool without any allows no ``local`` source. The
orphan sweep signals a process only when its start time matches ``pid.json`` and deletes
only directories inside its own root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from provisioners.base import (
    InfraRef,
    InfraState,
    InfraStatus,
    JobVariables,
    PoolConfig,
    Problem,
    Provisioner,
    SubmitRequest,
)
from provisioners.errors import NotAllowed, ProvisionerError

RUNNER_MODULE = "runner_image"
#: The only variables of the server's environment a flow inherits.
ALLOWED_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "TERM")
ALLOWED_ENV_PREFIXES = ("LC_",)
#: Env keys that change what runs (loader, interpreter, shell start-up): admin-only.
HOST_ENV_KEYS = frozenset(
    {"PATH", "BASH_ENV", "ENV", "PERL5LIB", "PERL5OPT", "RUBYOPT", "NODE_OPTIONS"}
)
HOST_ENV_PREFIXES = ("LD_", "PYTHON", "DYLD_", "GCONV_")
OUTCOME_FILE = "outcome.json"
OUTCOME_ENV = "PUSHPOOL_OUTCOME_FILE"
SOURCE_ROOTS_ENV = "PUSHPOOL_ALLOWED_SOURCE_ROOTS"


def _host_env_keys(env: dict[str, str]) -> list[str]:
    return sorted(k for k in env if k in HOST_ENV_KEYS or k.startswith(HOST_ENV_PREFIXES))


class ProcessJobVariables(JobVariables):
    env: dict[str, str] = Field(default_factory=dict)
    python: str | None = None
    command: list[str] | None = Field(
        default=None, min_length=1, description="Run this instead of `python -m runner_image`"
    )


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
    command: list[str] | None = Field(
        default=None, min_length=1, description="Run this instead of `python -m runner_image`"
    )
    env: dict[str, str] = Field(default_factory=dict, description="Every run's environment")
    allow_job_commands: bool = Field(
        default=False,
        description="Let deployments' job variables set command, python and host env keys",
    )
    allowed_source_roots: list[str] | None = Field(
        default=None,
        description=(
            "Absolute directories a `local` source must lie under, symlinks resolved"
            " (unset or empty: no `local` source is allowed)"
        ),
    )

    @field_validator("allowed_source_roots")
    @classmethod
    def _absolute_roots(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not all(os.path.isabs(root) for root in value):
            raise ValueError("every root must be an absolute path")
        return value

    def check_job_variables(self, job_variables: JobVariables) -> None:
        """Refuse host commands in job variables, unless the pool allows them."""
        assert isinstance(job_variables, ProcessJobVariables)
        if self.allow_job_commands:
            return
        host = [k for k in ("command", "python") if getattr(job_variables, k) is not None]
        host += [f"env.{k}" for k in _host_env_keys(job_variables.env)]
        if host:
            raise NotAllowed(
                host[0],
                f"job variables {', '.join(host)} run host commands: set them in the "
                "pool's config, or set allow_job_commands in it",
            )

    def source_problem(self, pool_name: str, path: str) -> str | None:
        """Why a ``local`` source at ``path`` may not run on this pool, or ``None``."""
        roots = self.allowed_source_roots
        if not roots:
            return (
                f"work pool {pool_name!r} allows no local source: its config has no "
                "allowed_source_roots; an admin sets them: pushpool work-pool update "
                f"{pool_name} --set 'allowed_source_roots=[\"/abs/dir\"]' (or PATCH "
                f"/api/work-pools/{pool_name} with that key in its config)"
            )
        resolved = Path(path).resolve()
        if not any(resolved.is_relative_to(Path(root).resolve()) for root in roots):
            return (
                f"local source {path!r} (resolved: {str(resolved)!r}) is not under work pool "
                f"{pool_name!r}'s allowed_source_roots {roots}"
            )
        return None


#: How much of the end of ``output.log`` :meth:`ProcessProvisioner.log_tail` reads.
TAIL_BYTES = 256 * 1024

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
    """Whether the process ``pid.json`` names still runs: the same pid *and* the same
    start time (a reused pid, or a planted record without a start time, is not it)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False  # gone, or not ours
    if start_ticks is None:
        return False
    return _start_ticks(pid) == start_ticks


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
        home = os.environ.get("PUSHPOOL_HOME") or os.path.join(Path.home(), ".pushpool")
        root = self.config.working_dir or os.path.join(home, "runs")
        self.root = Path(root) / pool_name

    # -- checks ---------------------------------------------------------------------
    def deployment_problems(
        self, source: Mapping[str, Any], job_variables: JobVariables
    ) -> list[Problem]:
        """Adds: a ``local`` source lies under the pool's ``allowed_source_roots``."""
        problems = super().deployment_problems(source, job_variables)
        if source.get("type") == "local":
            problem = self.config.source_problem(self.pool_name, str(source.get("path", "")))
            if problem is not None:
                problems.append(("source.path", problem))
        return problems

    # -- helpers ------------------------------------------------------------------
    def _dir(self, key: str) -> Path:
        return self.root / key

    def _ensure_root(self) -> None:
        """Create the run root (0700) and refuse one another user owns."""
        for directory in (self.root.parent, self.root):
            try:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                info = directory.lstat()
            except OSError as exc:
                raise ProvisionerError(f"cannot create {directory}: {exc}") from exc
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                raise ProvisionerError(
                    f"{directory} is not a directory owned by this server's user: refusing it"
                )
            if info.st_mode & 0o077:
                os.chmod(directory, 0o700)

    def _inside_root(self, path: Path) -> bool:
        root = self.root.resolve()
        resolved = path.resolve()
        return resolved != root and resolved.parent == root

    def _ref_from(self, run_dir: Path) -> InfraRef | None:
        """The ref ``pid.json`` describes, if it describes this very directory."""
        try:
            data = json.loads((run_dir / "pid.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("dir") != str(run_dir):
            return None  # a record naming another place is not ours
        return InfraRef(type=self.type, id=run_dir.name, data=data)

    def _environment(self, request: SubmitRequest, job: ProcessJobVariables) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k in ALLOWED_ENV or k.startswith(ALLOWED_ENV_PREFIXES)
        }
        env.update(self.config.env)
        env.update(job.env)
        env.update(request.secret_env_values())
        env.update(request.env)
        env[OUTCOME_ENV] = str(self._dir(request.idempotency_key) / OUTCOME_FILE)
        # Always set: empty means no ``local`` source (the runner checks it again).
        env[SOURCE_ROOTS_ENV] = os.pathsep.join(self.config.allowed_source_roots or [])
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    # -- the interface -----------------------------------------------------------------
    def find(self, request: SubmitRequest) -> InfraRef | None:
        return self._ref_from(self._dir(request.idempotency_key))

    def submit(self, request: SubmitRequest) -> InfraRef:
        job = ProcessJobVariables.model_validate(request.job_variables)
        try:
            self.config.check_job_variables(job)  # the pool's config may have changed
        except NotAllowed as exc:
            raise ProvisionerError(exc.message) from exc
        self._ensure_root()
        run_dir = self._dir(request.idempotency_key)
        try:
            run_dir.mkdir(mode=0o700)  # fresh: whoever made it first owns the attempt
        except FileExistsError:
            return self._wait_for_ref(run_dir)
        except OSError as exc:
            raise ProvisionerError(f"cannot create working directory {run_dir}: {exc}") from exc
        python = job.python or self.config.python or sys.executable
        argv = job.command or self.config.command or [python, "-m", RUNNER_MODULE]
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
            shutil.rmtree(run_dir, ignore_errors=True)
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
        info = run_dir.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise ProvisionerError(
                f"{run_dir} exists and is not a directory owned by this server's user"
            )
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
        recorded = self._recorded_exit_code(ref)
        if recorded is not None:
            return InfraStatus(
                InfraState.EXITED, exit_code=recorded, reason=f"process exited with code {recorded}"
            )
        return InfraStatus(
            InfraState.EXITED,
            reason="process exited (not started by this server, no outcome record)",
        )

    def _recorded_exit_code(self, ref: InfraRef) -> int | None:
        """The exit code in the runner's outcome record, if it left one."""
        try:
            data = json.loads((Path(ref.data["dir"]) / OUTCOME_FILE).read_text())
        except (OSError, ValueError):
            return None
        code = data.get("exit_code") if isinstance(data, dict) else None
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    def log_tail(self, ref: InfraRef, max_lines: int = 200) -> list[str]:
        """The last lines of the attempt's ``output.log`` (read from its end)."""
        path = Path(str(ref.data.get("dir", ""))) / "output.log"
        if not self._inside_root(path.parent):
            return []
        try:
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - TAIL_BYTES))
                data = fh.read()
        except OSError:
            return []
        lines = data.decode("utf-8", errors="replace").splitlines()
        return lines[-max_lines:] if max_lines > 0 else []

    def _signal(self, ref: InfraRef, sig: signal.Signals) -> None:
        """Signal the attempt's process group, if its leader is the very process started."""
        pid = int(ref.data["pid"])
        if not _alive(pid, ref.data.get("start_ticks")):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:  # started with its own session: a group leader
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
        run_dir = Path(str(ref.data.get("dir", "")))
        if self._inside_root(run_dir) and not run_dir.is_symlink():
            shutil.rmtree(run_dir, ignore_errors=True)

    def list_orphans(self, live_run_ids: set[str]) -> list[InfraRef]:
        if not self.root.is_dir():
            return []
        orphans = []
        for run_dir in sorted(self.root.iterdir()):
            if run_dir.is_symlink() or not run_dir.is_dir():
                continue
            run_id = run_dir.name.rsplit("-", 1)[0]
            if run_id in live_run_ids:
                continue
            ref = self._ref_from(run_dir)
            if ref is not None:
                orphans.append(ref)
        return orphans
