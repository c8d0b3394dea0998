"""The log spool: entries waiting to be shipped, in order, within a memory and a disk budget.

Entries are kept in memory up to ``memory_bytes`` (about their JSON size); beyond that they go,
in order, to a file in ``directory`` (the run's working directory) up to ``disk_bytes``.
Once anything is on disk every new entry goes there too, until the file is drained, so
the order never changes. When both budgets are spent an entry is dropped and counted;
the next entry that fits (or the end of the spool) is preceded by one marker entry
saying how many lines and bytes were dropped and why. The marker itself is never
dropped. Thread-safe.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

LogEntry = dict[str, Any]

DEFAULT_MEMORY_BYTES = 8 * 1024 * 1024
DEFAULT_DISK_BYTES = 256 * 1024 * 1024
SPOOL_FILE = ".pushpool-log-spool.jsonl"


def entry_size(entry: LogEntry) -> int:
    """About the entry's JSON size in bytes (its text values, plus the keys and quoting),
    without encoding it: cheap enough to call for every line."""
    return ENTRY_OVERHEAD + sum(len(v) for v in entry.values() if isinstance(v, str))


#: What an entry's keys, quotes and separators add to its text (see ``make_entry``).
ENTRY_OVERHEAD = 80


class Spool:
    def __init__(
        self,
        directory: Path | None,
        *,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        disk_bytes: int = DEFAULT_DISK_BYTES,
        make_marker: Callable[[str], LogEntry],
    ) -> None:
        self._memory: deque[tuple[LogEntry, int]] = deque()
        self._memory_used = 0
        self._memory_bytes = memory_bytes
        self._disk_bytes = disk_bytes if directory is not None else 0
        self._path = directory / SPOOL_FILE if directory is not None else None
        self._writer: IO[str] | None = None
        self._reader: IO[str] | None = None
        self._disk_used = 0  # bytes written to the current file
        self._on_disk = 0  # entries in the file not yet taken
        self._dropped_lines = 0
        self._dropped_bytes = 0
        self._make_marker = make_marker
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._memory) + self._on_disk + (1 if self._dropped_lines else 0)

    @property
    def dropped(self) -> tuple[int, int]:
        """Lines and bytes dropped and not yet reported by a marker."""
        return self._dropped_lines, self._dropped_bytes

    def put(self, entry: LogEntry) -> None:
        """Queue ``entry`` after everything queued before it, or drop it if no room."""
        size = entry_size(entry)
        with self._lock:
            if self._fits(size):
                self._flush_marker()
            if not self._fits(size):  # no room, or the marker took it
                self._dropped_lines += 1
                self._dropped_bytes += size
                return
            self._store(entry, size)

    def take(self, limit: int) -> list[LogEntry]:
        """Remove and return up to ``limit`` of the oldest entries."""
        out: list[LogEntry] = []
        with self._lock:
            while len(out) < limit and self._memory:
                entry, size = self._memory.popleft()
                self._memory_used -= size
                out.append(entry)
            while len(out) < limit and self._on_disk:
                out.append(self._read_one())
            if not self._memory and not self._on_disk:
                self._reset_file()
                if self._dropped_lines and len(out) < limit:
                    out.append(self._marker())
        return out

    def close(self) -> None:
        """Remove the spool file; what it held is gone."""
        with self._lock:
            self._reset_file()
            self._memory.clear()
            self._memory_used = 0

    # -- internals (lock held) -------------------------------------------------------
    def _fits(self, size: int) -> bool:
        if not self._on_disk and self._memory_used + size <= self._memory_bytes:
            return True
        return self._disk_used + size <= self._disk_bytes

    def _store(self, entry: LogEntry, size: int) -> None:
        if not self._on_disk and self._memory_used + size <= self._memory_bytes:
            self._memory.append((entry, size))
            self._memory_used += size
            return
        try:
            self._write(json.dumps(entry, allow_nan=False, default=str))
        except OSError:
            self._disk_bytes = 0  # the directory is unusable: memory only from now on
            self._dropped_lines += 1
            self._dropped_bytes += size
            return
        self._disk_used += size + 1
        self._on_disk += 1

    def _flush_marker(self) -> None:
        """Queue the marker for what was dropped, ignoring the budget (it is small)."""
        if not self._dropped_lines:
            return
        marker = self._marker()
        line = json.dumps(marker)
        if self._on_disk:
            try:
                self._write(line)
                self._on_disk += 1
                return
            except OSError:
                pass
        self._memory.append((marker, len(line)))
        self._memory_used += len(line)

    def _marker(self) -> LogEntry:
        lines, size = self._dropped_lines, self._dropped_bytes
        self._dropped_lines = self._dropped_bytes = 0
        return self._make_marker(
            f"{lines} log line(s) ({size} bytes) dropped: the runner's log spool was full "
            f"(memory {self._memory_bytes} bytes, disk {self._disk_bytes} bytes) while the "
            "service could not be reached"
        )

    def _write(self, line: str) -> None:
        assert self._path is not None
        if self._writer is None:
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._writer = os.fdopen(fd, "w", encoding="utf-8")
            self._reader = open(self._path, encoding="utf-8")  # noqa: SIM115 - kept open
        self._writer.write(line + "\n")
        self._writer.flush()

    def _read_one(self) -> LogEntry:
        assert self._reader is not None
        self._on_disk -= 1
        entry: LogEntry = json.loads(self._reader.readline())
        return entry

    def _reset_file(self) -> None:
        for handle in (self._writer, self._reader):
            if handle is not None:
                handle.close()
        self._writer = self._reader = None
        self._disk_used = 0
        self._on_disk = 0
        if self._path is not None:
            self._path.unlink(missing_ok=True)
