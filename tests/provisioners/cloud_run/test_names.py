"""Job ids and labels obey Cloud Run's naming rules and are deterministic per attempt."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from provisioners.cloud_run.infra import account_id, repository_id
from provisioners.cloud_run.names import EXECUTION_TOKEN, job_id, label_value

JOB_ID = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


@given(st.text(min_size=1, max_size=200), st.integers(min_value=1, max_value=10**6))
def test_job_ids_obey_cloud_runs_rules(run_id: str, attempt: int) -> None:
    name = job_id(run_id, attempt)
    assert JOB_ID.fullmatch(name), name
    assert len(name) + len(EXECUTION_TOKEN) + 1 < 63
    assert job_id(run_id, attempt) == name  # deterministic
    assert job_id(run_id, attempt + 1) != name


def test_a_uuid_run_id_stays_readable() -> None:
    run_id = "0b7c6a52-8a3e-4a0e-9d1e-4f1f3c1b2a99"
    assert job_id(run_id, 2).startswith("pp-0b7c6a52-8a3e-4a0e-9d1e")
    assert job_id(run_id, 2).endswith("-2")


@given(st.text(max_size=100), st.text(max_size=100))
def test_label_values_are_valid_and_distinct(one: str, other: str) -> None:
    assert LABEL_VALUE.fullmatch(label_value(one)), label_value(one)
    if one != other:
        assert label_value(one) != label_value(other)


@given(st.text(min_size=1, max_size=100))
def test_pool_resource_names_obey_iam_and_artifact_registry_rules(pool: str) -> None:
    account = account_id(pool)
    assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account), account
    repository = repository_id(pool)
    assert re.fullmatch(r"[a-z][a-z0-9-]{0,61}[a-z0-9]", repository), repository
    assert account_id(pool + "x") != account
