"""An ETL flow: extract with retries, transform with ``.map``, load; transforms are cached.

Try it locally (tasks included, results under ``$PUSHPOOL_HOME/results``)::

    python examples/etl.py
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from pushpool import INPUTS, exponential_backoff, flow, get_run_logger, task


@task(retries=3, retry_delay_seconds=exponential_backoff(0.1), tags=["source-api"])
def extract(day: date, rows: int, failure_rate: float) -> list[dict[str, object]]:
    """Fetch one day's rows from a flaky source (fails ``failure_rate`` of the time)."""
    if random.random() < failure_rate:
        raise ConnectionError("source unavailable, try again")
    return [{"day": day.isoformat(), "id": i, "amount": i * 1.5} for i in range(rows)]


@task(cache_policy=INPUTS, cache_expiration=timedelta(days=1))
def transform(row: dict[str, object]) -> dict[str, object]:
    """Enrich one row; a row seen before (same inputs) is read from the cache."""
    amount = float(row["amount"])  # type: ignore[arg-type]
    return {**row, "amount_cents": round(amount * 100), "large": amount > 5}


@task
def load(rows: list[dict[str, object]]) -> int:
    """Pretend to write the rows somewhere; return how many were written."""
    get_run_logger().info("loading %d rows", len(rows))
    return len(rows)


@flow(name="etl", log_prints=True, retries=1)
def etl(day: date = date(2026, 1, 1), rows: int = 5, failure_rate: float = 0.3) -> int:
    raw = extract(day, rows, failure_rate)
    clean = transform.map(raw)
    written = load(clean.result())
    print(f"{day}: {written} rows loaded")
    return written


if __name__ == "__main__":
    print(etl())
