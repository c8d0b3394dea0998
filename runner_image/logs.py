"""Capturing the flow's output and shipping it to the service in batches.

* ``print`` output: ``sys.stdout``/``sys.stderr`` are replaced by :class:`TeeStream`,
  which still writes to the original stream and turns complete lines into log
  entries.
* ``logging``: a handler on the root logger (level INFO) turns records into entries;
  a second handler keeps printing them to the original stderr.
* :class:`LogShipper` spools entries (:mod:`runner_image.spool`) and a background thread
  POSTs them about every second, or as soon as ``FLUSH_AT`` entries are waiting, at most
  ``BATCH_MAX`` per numbered batch. :meth:`LogCapture.stop` restores everything and ships
  what is left, within the delivery window.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

from runner_image.client import ApiError, Unauthorized
from runner_image.spool import Spool

LogEntry = dict[str, Any]

MAX_MESSAGE_BYTES = 16 * 1024
TRUNCATION_MARKER = "... [truncated]"
FLUSH_INTERVAL = 1.0
FLUSH_AT = 200
BATCH_MAX = 500
#: How long the runner keeps trying to deliver what it has (overridable per run).
DEFAULT_WINDOW = 15 * 60.0
CLOSE_MARGIN = 5.0
#: Pause between tries while closing, when a send failed before the deadline.
CLOSING_RETRY = 0.5
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
    message: str,
    *,
    level: str,
    stream: str,
    logger: str | None,
    created: float | None = None,
    task_run_id: str | None = None,
) -> LogEntry:
    """One log entry as the service takes it; ``task_run_id`` (only sent when set) files
    the line under the task run that wrote it."""
    when = datetime.now(UTC) if created is None else datetime.fromtimestamp(created, UTC)
    entry: LogEntry = {
        "timestamp": when.isoformat(),
        "level": level,
        "message": truncate_message(message),
        "stream": stream,
        "logger": logger,
    }
    if task_run_id is not None:
        entry["task_run_id"] = task_run_id
    return entry


def current_task_run_id() -> str | None:
    """The id of the SDK task run executing in this thread, if the flow uses ``pushpool``
    (a plain-function flow never imported it, and pays one dict lookup)."""
    context = sys.modules.get("pushpool.context")
    if context is None:
        return None
    task = context.current_task_run()
    return None if task is None else str(task.id)


class Redactor:
    """Replaces secrets (the run token, block secrets) in text."""

    MIN_SECRET_LENGTH = 8  # redacting a very short string would mangle ordinary output

    def __init__(self, *secrets: str) -> None:
        self._secrets = [s for s in secrets if len(s) >= self.MIN_SECRET_LENGTH]

    def add(self, *secrets: str) -> None:
        """Redact these too from now on (block secrets the flow loaded)."""
        self._secrets.extend(
            s for s in secrets if len(s) >= self.MIN_SECRET_LENGTH and s not in self._secrets
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class LogShipper:
    """The spool of entries plus the thread that ships them, in order, exactly once.

    Batches are numbered from 0 per attempt (``seq``); a batch is resent with its number
    until the service has it, so the service stores it once. While the flow runs the
    thread retries a failing batch (with backoff) for as long as it takes, while new
    entries spool (memory, then disk); :meth:`close` ships what is left until
    ``deadline`` and gives up after that.
    """

    def __init__(
        self,
        send: Callable[[list[LogEntry], int, float | None], None],
        *,
        spool: Spool | None = None,
        on_unauthorized: Callable[[], None] | None = None,
        errors: TextIO | None = None,
        interval: float = FLUSH_INTERVAL,
        window: float = DEFAULT_WINDOW,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._send = send
        self._sleep = sleep
        self._spool = spool or Spool(None, make_marker=_marker_entry)
        self._on_unauthorized = on_unauthorized
        self._errors = errors if errors is not None else sys.__stderr__
        self._interval = interval
        self._window = window
        self._now = now
        self._seq = 0
        self._pending: list[LogEntry] = []
        self._cond = threading.Condition()
        self._deadline: float | None = None  # set by close(): ship until then, then stop
        self._disabled = False
        self._warned = False
        self.undelivered = 0
        self._thread = threading.Thread(target=self._loop, name="pushpool-logs", daemon=True)

    def add(self, entry: LogEntry) -> None:
        if self._disabled:
            return
        self._spool.put(entry)
        if len(self._spool) >= FLUSH_AT:
            with self._cond:
                self._cond.notify()

    def start(self) -> None:
        self._thread.start()

    def close(self, deadline: float | None = None) -> None:
        """Ship everything still spooled, trying until ``deadline`` (default: the window
        from now); then stop the thread."""
        with self._cond:
            self._deadline = self._now() + self._window if deadline is None else deadline
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(max(0.0, self._deadline - self._now()) + CLOSE_MARGIN)
        else:
            self._ship()
        self._spool.close()

    @property
    def all_delivered(self) -> bool:
        return not self._disabled and self.undelivered == 0 and not self._pending

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._ready, timeout=self._interval)
                closing = self._deadline is not None
            self._ship()
            if closing:
                return

    def _ready(self) -> bool:
        return self._deadline is not None or len(self._spool) >= FLUSH_AT

    def _ship(self) -> None:
        """Send batches until the spool is empty, the service refuses us, or (closing)
        the deadline passes; a batch that could not be sent stays pending."""
        while not self._disabled:
            if not self._pending:
                self._pending = self._spool.take(BATCH_MAX)
                if not self._pending:
                    return
            deadline = self._deadline if self._deadline is not None else self._now() + self._window
            if not self._send_pending(deadline):
                if self._deadline is None or self._disabled:
                    return  # the loop tries again
                left = self._deadline - self._now()
                if left <= 0:
                    self._give_up()
                    return
                self._sleep(min(CLOSING_RETRY, left))

    def _send_pending(self, deadline: float) -> bool:
        try:
            self._send(self._pending, self._seq, deadline)
        except Unauthorized:
            self._disabled = True
            if self._on_unauthorized is not None:
                self._on_unauthorized()
            return False
        except ApiError as exc:
            self._warn(f"pushpool-runner: could not ship {len(self._pending)} log line(s): {exc}")
            if exc.status is None or exc.status == 429 or exc.status >= 500:
                return False  # unreachable: keep the batch for the next try
            self.undelivered += len(self._pending)  # refused as it is: it never will be
        self._pending = []
        self._seq += 1
        return True

    def _give_up(self) -> None:
        rest = len(self._pending) + len(self._spool)
        self._pending = []
        self.undelivered += rest
        self._warn(
            f"pushpool-runner: {rest} log line(s) not delivered: the service was unreachable"
        )

    def _warn(self, message: str) -> None:
        if self._errors is not None and not self._warned:
            self._warned = True  # once: the API is likely down, do not flood the console
            print(message, file=self._errors, flush=True)


def _marker_entry(message: str) -> LogEntry:
    return make_entry(message, level="WARNING", stream="logging", logger="pushpool.runner")


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
        entry = make_entry(
            line,
            level=self._level,
            stream=self._stream,
            logger=None,
            task_run_id=current_task_run_id(),
        )
        self._sink(entry)


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
                task_run_id=getattr(record, "task_run_id", None) or current_task_run_id(),
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
        send: Callable[[list[LogEntry], int, float | None], None],
        *,
        redact: Callable[[str], str],
        on_unauthorized: Callable[[], None] | None = None,
        spool_dir: Path | None = None,
        window: float = DEFAULT_WINDOW,
    ) -> None:
        self._original_stdout = sys.stdout
        self._original_stderr = sys.stderr
        self.shipper = LogShipper(
            send,
            spool=Spool(spool_dir, make_marker=_marker_entry),
            on_unauthorized=on_unauthorized,
            errors=self._original_stderr,
            window=window,
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

    def stop(self, deadline: float | None = None) -> None:
        """Restore streams and logging, then ship every remaining line (until
        ``deadline``, a :func:`time.monotonic` instant; default: the window from now)."""
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
        self.shipper.close(deadline)


def _console_handler(stream: TextIO, redact: Callable[[str], str]) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_RedactingFormatter(CONSOLE_FORMAT, redact))
    return handler
