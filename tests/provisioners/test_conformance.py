"""The Provisioner conformance suite: every pool type must pass it (see ``HARNESSES``)."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError
from support.harness import Harness

from provisioners.base import InfraRef, InfraState
from provisioners.errors import ProvisionerError


def rid() -> str:
    return str(uuid.uuid4())


def test_submit_then_exit_code(harness: Harness) -> None:
    ref = harness.provisioner.submit(harness.request(rid(), harness.exit_job(3)))
    assert ref.type == harness.provisioner.type
    harness.wait_finished(ref)
    status = harness.provisioner.status(ref)
    assert status.state == InfraState.EXITED
    if harness.reports_exit_codes:
        assert status.exit_code == 3
    harness.provisioner.teardown(ref)


def test_submit_is_idempotent_per_attempt(harness: Harness) -> None:
    run_id = rid()
    request = harness.request(run_id, harness.sleep_job(5))
    assert harness.provisioner.find(request) is None
    first = harness.provisioner.submit(request)
    second = harness.provisioner.submit(request)
    assert first == second
    assert harness.provisioner.find(request) == first
    next_attempt = harness.provisioner.submit(harness.request(run_id, harness.sleep_job(5), 2))
    assert next_attempt.id != first.id
    for ref in (first, next_attempt):
        harness.provisioner.teardown(ref)


def test_running_then_cancel(harness: Harness) -> None:
    ref = harness.provisioner.submit(harness.request(rid(), harness.sleep_job(30)))
    assert harness.provisioner.status(ref).state in (InfraState.PENDING, InfraState.RUNNING)
    harness.provisioner.cancel(ref, grace_seconds=2)
    harness.provisioner.cancel(ref, grace_seconds=2)  # idempotent
    harness.wait_finished(ref, timeout=10)
    harness.provisioner.teardown(ref)


def test_teardown_is_idempotent_and_leaves_nothing(harness: Harness) -> None:
    run_id = rid()
    ref = harness.provisioner.submit(harness.request(run_id, harness.sleep_job(30)))
    harness.provisioner.teardown(ref)
    harness.provisioner.teardown(ref)
    assert harness.provisioner.status(ref).finished
    assert harness.provisioner.list_orphans(set()) == []


def test_orphans_are_those_not_live(harness: Harness) -> None:
    live, dead = rid(), rid()
    refs = [
        harness.provisioner.submit(harness.request(r, harness.exit_job(0))) for r in (live, dead)
    ]
    orphans = harness.provisioner.list_orphans({live})
    assert [o.id for o in orphans] == [refs[1].id]
    for ref in refs:
        harness.provisioner.teardown(ref)


def test_bad_config_and_job_variables_are_rejected(harness: Harness) -> None:
    cls = type(harness.provisioner)
    with pytest.raises(ValidationError):
        cls.config_model.model_validate({"no_such_option": 1})
    with pytest.raises(ValidationError):
        cls.job_variables_model.model_validate({"no_such_variable": 1})


def test_status_of_unknown_infrastructure_is_finished(harness: Harness) -> None:
    ref = harness.provisioner.submit(harness.request(rid(), harness.exit_job(0)))
    harness.provisioner.teardown(ref)
    assert harness.provisioner.status(ref).finished


def test_submit_failure_is_a_provisioner_error(harness: Harness) -> None:
    if harness.provisioner.type != "process":
        pytest.skip("platform-specific failure injection")
    request = harness.request(rid(), {"command": ["/nonexistent/binary"]})
    with pytest.raises(ProvisionerError) as info:
        harness.provisioner.submit(request)
    assert "secret-token" not in str(info.value)
    assert isinstance(InfraRef, type)


def test_status_many_agrees_with_status(harness: Harness) -> None:
    p = harness.provisioner
    running = p.submit(harness.request(rid(), harness.sleep_job(30)))
    exited = p.submit(harness.request(rid(), harness.exit_job(3)))
    gone = p.submit(harness.request(rid(), harness.exit_job(0)))
    harness.wait_finished(exited)
    p.teardown(gone)
    refs = [running, exited, gone]
    many = p.status_many(refs)
    assert set(many) == {r.id for r in refs}
    assert many == {r.id: p.status(r) for r in refs}
    assert many[gone.id].finished and many[exited.id].finished
    assert not many[running.id].finished
    assert p.status_many([]) == {}
    for ref in (running, exited):
        p.teardown(ref)
