"""Capturing the flow's output and shipping it to the service in batches.

* ``print`` output: ``sys.stdout``/``sys.stderr`` are replaced by :class:`TeeStream`,
  which still writes to the original stream and turns complete lines into log
  entries.
* ``logging``: a handler on the root logger (level INFO) turns records into entries;
  a second handler keeps printing them to the original stderr.
* :class:`LogShipper` buffers entries and a background thread POSTs them about every
  second, or as soon as ``FLUSH_AT`` entries are waiting, at most ``BATCH_MAX`` per
  request. :meth:`LogCapture.stop` restores everything and flushes what is left.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO, cast

from runner_image.client import ApiError, Unauthorized

LogEntry = dict[str, Any]

MAX_MESSAGE_BYTES = 16 * 1024
TRUNCATION_MARKER = "... [truncated]"
FLUSH_INTERVAL = 1.0
FLUSH_AT = 200
BATCH_MAX = 500
MAX_BUFFERED = 20_000
CLOSE_TIMEOUT = 15.0
CONSOLE_FORMAT = "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"
REDACTED = "[REDACTED]"


def truncate_message(message: str, max_bytes: int = MAX_MESSAGE_BYTES) -> str:
    """Cut ``message`` to at most ``max_bytes`` UTF-8 bytes, marker included."""
    encoded = message.encode("utf-8", errors="replace")
    if len(encoded) <= max_bytes:
        return message
    keep = max_bytes - len(TRUNCATION_MARKER.encode())
    return encoded[:keep].decode("utf-8", errors="ignore") + TRUNCATION_MARKER


def make_entry(
    message: str, *, level: str, stream: str, logger: str | None, created: float | None = None
) -> LogEntry:
    when = datetime.now(UTC) if created is None else datetime.fromtimestamp(created, UTC)
    return {
        "timestamp": when.isoformat(),
        "level": level,
        "message": truncate_message(message),
        "stream": stream,
        "logger": logger,
    }


class Redactor:
    """Replaces secrets (the run token) in text."""

    MIN_SECRET_LENGTH = 8  # redacting a very short string would mangle ordinary output

    def __init__(self, *secrets: str) -> None:
        self._secrets = [s for s in secrets if len(s) >= self.MIN_SECRET_LENGTH]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class LogShipper:
    """A buffer of entries plus the thread that sends them."""

    def __init__(
        self,
        send: Callable[[list[LogEntry]], None],
        *,
        on_unauthorized: Callable[[], None] | None = None,
        errors: TextIO | None = None,
        interval: float = FLUSH_INTERVAL,
    ) -> None:
        self._send = send
        self._on_unauthorized = on_unauthorized
        self._errors = errors if errors is not None else sys.__stderr__
        self._interval = interval
        self._entries: deque[LogEntry] = deque()
        self._dropped = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._disabled = False
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name="pushpool-logs", daemon=True)

    def add(self, entry: LogEntry) -> None:
        with self._cond:
            if self._disabled:
                return
            if len(self._entries) >= MAX_BUFFERED:
                self._entries.popleft()
                self._dropped += 1
            self._entries.append(entry)
            if len(self._entries) >= FLUSH_AT:
                self._cond.notify()

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop the thread and send everything still buffered."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._ship(self._take())

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._ready, timeout=self._interval)
                stopping = self._stopping
            if stopping:
                return  # close() ships the rest from the calling thread
            self._ship(self._take())

    def _ready(self) -> bool:
        return self._stopping or len(self._entries) >= FLUSH_AT

    def _take(self) -> list[LogEntry]:
        with self._cond:
            batch = list(self._entries)
            self._entries.clear()
            dropped, self._dropped = self._dropped, 0
        if dropped:
            note = f"{dropped} log line(s) dropped: the log buffer was full"
            batch.insert(0, make_entry(note, level="WARNING", stream="logging", logger=__name__))
        return batch

    def _ship(self, batch: list[LogEntry]) -> None:
        for start in range(0, len(batch), BATCH_MAX):
            if self._disabled:
                return
            self._send_batch(batch[start : start + BATCH_MAX])

    def _send_batch(self, batch: list[LogEntry]) -> None:
        try:
            self._send(batch)
        except Unauthorized:
            self._disabled = True
            if self._on_unauthorized is not None:
                self._on_unauthorized()
        except ApiError as exc:
            self._warn(f"pushpool-runner: could not ship {len(batch)} log line(s): {exc}")

    def _warn(self, message: str) -> None:
        if self._errors is not None and not self._warned:
            self._warned = True  # once: the API is likely down, do not flood the console
            print(message, file=self._errors, flush=True)


class TeeStream:
    """Stands in for ``sys.stdout``/``sys.stderr``: writes through, records lines."""

    def __init__(
        self,
        original: TextIO,
        stream: str,
        sink: Callable[[LogEntry], None],
        redact: Callable[[str], str],
    ) -> None:
        self._original = original
        self._stream = stream
        self._level = "INFO" if stream == "stdout" else "WARNING"
        self._sink = sink
        self._redact = redact
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        self._original.write(self._redact(text))
        with self._lock:
            self._pending += text
            if "\n" not in self._pending and len(self._pending) <= MAX_MESSAGE_BYTES:
                return len(text)
            *lines, self._pending = self._pending.split("\n")
            if len(self._pending) > MAX_MESSAGE_BYTES:  # a huge line with no newline yet
                lines.append(self._pending)
                self._pending = ""
        for line in lines:
            self._emit(line)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._original.flush()

    def finish(self) -> None:
        """Emit a last line that was not terminated by a newline."""
        with self._lock:
            rest, self._pending = self._pending, ""
        if rest:
            self._emit(rest)
        self.flush()

    def isatty(self) -> bool:
        return self._original.isatty()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, buffer, errors...
        return getattr(self._original, name)

    def _emit(self, line: str) -> None:
        line = self._redact(line.removesuffix("\r"))
        self._sink(make_entry(line, level=self._level, stream=self._stream, logger=None))


class CaptureHandler(logging.Handler):
    """Turns logging records into log entries."""

    def __init__(self, sink: Callable[[LogEntry], None], redact: Callable[[str], str]) -> None:
        super().__init__(level=logging.NOTSET)
        self._sink = sink
        self._redact = redact
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self._redact(self.format(record))
            entry = make_entry(
                message,
                level=record.levelname,
                stream="logging",
                logger=record.name,
                created=record.created,
            )
            self._sink(entry)
        except Exception:
            self.handleError(record)


class _RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, redact: Callable[[str], str]) -> None:
        super().__init__(fmt)
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class LogCapture:
    """Installs and removes the capture of stdout, stderr and logging."""

    def __init__(
        self,
        send: Callable[[list[LogEntry]], None],
        *,
        redact: Callable[[str], str],
        on_unauthorized: Callable[[], None] | None = None,
    ) -> None:
        self._original_stdout = sys.stdout
        self._original_stderr = sys.stderr
        self.shipper = LogShipper(
            send, on_unauthorized=on_unauthorized, errors=self._original_stderr
        )
        self._redact = redact
        self._stdout = TeeStream(sys.stdout, "stdout", self.shipper.add, redact)
        self._stderr = TeeStream(sys.stderr, "stderr", self.shipper.add, redact)
        self._handlers: list[logging.Handler] = [
            CaptureHandler(self.shipper.add, redact),
            _console_handler(self._original_stderr, redact),
        ]
        self._previous_level = logging.NOTSET
        self._active = False

    def start(self) -> None:
        root = logging.getLogger()
        self._previous_level = root.level
        root.setLevel(logging.INFO)
        for handler in self._handlers:
            root.addHandler(handler)
        sys.stdout = cast(TextIO, self._stdout)
        sys.stderr = cast(TextIO, self._stderr)
        self._active = True
        self.shipper.start()

    def stop(self) -> None:
        """Restore streams and logging, then ship every remaining line."""
        if not self._active:
            return
        self._active = False
        sys.stdout = self._original_stdout
        sys.stderr = self._original_stderr
        self._stdout.finish()
        self._stderr.finish()
        root = logging.getLogger()
        for handler in self._handlers:
            root.removeHandler(handler)
        root.setLevel(self._previous_level)
        self.shipper.close()


def _console_handler(stream: TextIO, redact: Callable[[str], str]) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_RedactingFormatter(CONSOLE_FORMAT, redact))
    return handler
