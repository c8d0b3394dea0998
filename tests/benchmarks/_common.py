"""Helpers the benchmarks share: order statistics, tables, process readings."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100), linear between closest ranks.

    Same definition as numpy's default and ``statistics.quantiles(method="inclusive")``:
    rank ``(n - 1) * p / 100`` in the sorted sample, interpolated. p50 is the median.
    """
    if not values:
        return math.nan
    xs = sorted(values)
    rank = (len(xs) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table: first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f}"


def proc_status_kib(pid: int, field: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (VmRSS, VmHWM), or None if unavailable."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for row in text.splitlines():
        if row.startswith(field + ":"):
            return int(row.split()[1])
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def clean_env() -> dict[str, str]:
    """This environment without the service's own ``PUSHPOOL_*`` settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PUSHPOOL_")}


_SPIN = (
    "import sys, time\n"
    "start = float(sys.argv[1])\n"
    "while time.time() < start: pass\n"
    "t0 = time.perf_counter()\n"
    "x = 0\n"
    "for i in range(3_000_000): x += i * i\n"
    "print(time.perf_counter() - t0)\n"
)


def _spin_together(count: int) -> float:
    """Start ``count`` CPU-bound processes at one instant; the slowest one's time."""
    import subprocess
    import sys
    import time

    start = str(time.time() + 0.3)
    procs = [
        subprocess.Popen([sys.executable, "-c", _SPIN, start], stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    times = [float(p.communicate(timeout=60)[0]) for p in procs]
    return max(times)


def parallel_slowdown() -> float:
    """How much slower each of two busy processes runs than one alone (1.0 = ideal)."""
    alone = min(_spin_together(1) for _ in range(2))
    both = min(_spin_together(2) for _ in range(2))
    return both / alone


def load_note() -> str:
    """The machine's load averages: other work running on a shared machine skews figures."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"
