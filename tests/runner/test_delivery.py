"""Delivery without loss: the log spool's bounds, numbered batches resent until taken,
the client's backoff (with ``Retry-After``) over a delivery window, on injected time."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner_image.client import ApiError, Backoff, Clock, RunnerClient
from runner_image.logs import LogShipper
from runner_image.spool import SPOOL_FILE, Spool, entry_size


def entry(i: int, size: int = 10) -> dict[str, Any]:
    return {"message": f"{i:0{size}d}"}


def marker(text: str) -> dict[str, Any]:
    return {"message": text, "marker": True}


def drain(spool: Spool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while batch := spool.take(7):
        out += batch
    return out


# -- the spool ------------------------------------------------------------------------------
def test_spool_keeps_order_across_memory_and_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path, memory_bytes=200, disk_bytes=10_000, make_marker=marker)
    for i in range(50):
        spool.put(entry(i))
    assert (tmp_path / SPOOL_FILE).exists()  # past the memory bound: on disk
    first = spool.take(3)
    for i in range(50, 60):  # new entries go after what is on disk
        spool.put(entry(i))
    assert [e["message"] for e in first + drain(spool)] == [f"{i:010d}" for i in range(60)]
    assert not (tmp_path / SPOOL_FILE).exists()  # drained: the file is gone


def test_spool_drops_past_the_disk_budget_and_says_so(tmp_path: Path) -> None:
    size = entry_size(entry(0))
    spool = Spool(tmp_path, memory_bytes=size * 2, disk_bytes=(size + 1) * 3, make_marker=marker)
    for i in range(10):
        spool.put(entry(i))
    assert spool.dropped == (5, 5 * size)
    got = drain(spool)
    assert [e["message"] for e in got[:5]] == [f"{i:010d}" for i in range(5)]
    assert got[5]["marker"] and got[5]["message"].startswith(f"5 log line(s) ({5 * size} bytes)")
    assert len(got) == 6


def test_spool_marks_the_gap_where_it_was(tmp_path: Path) -> None:
    size = entry_size(entry(0))
    spool = Spool(None, memory_bytes=size * 16, make_marker=marker)  # no disk at all
    for i in range(20):
        spool.put(entry(i))  # 16 kept, 4 dropped
    assert len(spool.take(16)) == 16  # room again
    spool.put(entry(99))
    got = drain(spool)
    assert got[0]["marker"] and got[0]["message"].startswith("4 log line(s)")
    assert got[1]["message"] == f"{99:010d}"
    assert len(got) == 2


# -- the shipper: numbered batches, resent until taken --------------------------------------
class FlakyService:
    """Fails the first ``failures`` sends; records every (seq, batch) it is sent."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[int, list[str]]] = []
        self.stored: dict[int, list[str]] = {}

    def send(self, batch: list[dict[str, Any]], seq: int, deadline: float | None) -> None:
        self.calls.append((seq, [e["message"] for e in batch]))
        if self.failures > 0:
            self.failures -= 1
            raise ApiError("service unreachable")
        self.stored.setdefault(seq, [e["message"] for e in batch])


def test_a_failed_batch_is_resent_with_its_number(tmp_path: Path) -> None:
    service = FlakyService(failures=3)
    spool = Spool(tmp_path, memory_bytes=100, make_marker=marker)
    shipper = LogShipper(service.send, spool=spool, interval=0.01, window=5)
    shipper.start()
    for i in range(1200):
        shipper.add(entry(i))
    shipper.close()
    stored = [m for seq in sorted(service.stored) for m in service.stored[seq]]
    assert stored == [f"{i:010d}" for i in range(1200)]
    assert sorted(service.stored) == list(range(len(service.stored)))
    first_seq, first_batch = service.calls[0]
    assert service.calls[3] == (first_seq, first_batch)  # the same batch, the same number
    assert shipper.all_delivered


def test_the_shipper_gives_up_after_its_deadline() -> None:
    service = FlakyService(failures=10**9)
    now = [0.0]
    shipper = LogShipper(service.send, interval=60, window=30, now=lambda: now[0])
    shipper.add(entry(1))
    shipper.add(entry(2))
    now[0] = 100.0
    shipper.close(deadline=50.0)
    assert shipper.undelivered == 2 and not shipper.all_delivered


# -- the client: backoff over a window, Retry-After honoured ------------------------------
class FakeTime(Clock):
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []
        super().__init__(now=lambda: self.t, sleep=self._sleep, rand=lambda: 0.5)

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class _Handler(http.server.BaseHTTPRequestHandler):
    answers: list[tuple[int, dict[str, str]]] = []
    seen: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(self.path)
        status, headers = type(self).answers.pop(0) if type(self).answers else (204, {})
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.answers, _Handler.seen = [], []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_backoff_grows_with_jitter_and_honours_retry_after(server: str) -> None:
    _Handler.answers = [(503, {}), (503, {}), (429, {"Retry-After": "42"}), (503, {})]
    time = FakeTime()
    client = RunnerClient(server, "r", "tok", clock=time, backoff=Backoff(base=1, cap=8))
    client.send_logs([{"message": "x"}], seq=0, deadline=1000.0)
    # equal jitter at rand=0.5: 3/4 of min(cap, base * 2**n); Retry-After taken as given
    assert time.sleeps == [0.75, 1.5, 42.0, 6.0]
    assert len(_Handler.seen) == 5


def test_the_client_keeps_trying_until_the_deadline_then_fails(server: str) -> None:
    _Handler.answers = [(503, {})] * 100
    time = FakeTime()
    client = RunnerClient(server, "r", "tok", clock=time, backoff=Backoff(base=1, cap=4))
    with pytest.raises(ApiError):
        client.send_logs([{"message": "x"}], seq=0, deadline=20.0)
    assert time.t == pytest.approx(20.0)  # the last wait ends exactly at the deadline
    assert max(time.sleeps) <= 4


def test_an_unreachable_service_is_retried_for_the_window() -> None:
    time = FakeTime()
    client = RunnerClient("http://127.0.0.1:9", "r", "tok", clock=time, backoff=Backoff(1, 2))
    with pytest.raises(ApiError, match="unreachable"):
        client.set_state("COMPLETED", deadline=10.0)
    assert sum(time.sleeps) == pytest.approx(10.0)
