"""Pool config and job variables: what Cloud Run accepts, and clear errors for the rest."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from provisioners.cloud_run.models import CloudRunJobVariables, CloudRunPoolConfig


def jv(**values: Any) -> CloudRunJobVariables:
    return CloudRunJobVariables.model_validate(values)


def error_of(**values: Any) -> str:
    with pytest.raises(ValidationError) as info:
        jv(**values)
    return str(info.value)


def test_pool_config_needs_project_and_region_and_forbids_extras() -> None:
    with pytest.raises(ValidationError, match="region"):
        CloudRunPoolConfig.model_validate({"project": "demo-project"})
    with pytest.raises(ValidationError, match="cluster"):
        CloudRunPoolConfig.model_validate(
            {"project": "demo-project", "region": "us-central1", "cluster": "x"}
        )
    with pytest.raises(ValidationError, match="project"):
        CloudRunPoolConfig.model_validate({"project": "Bad_Project!", "region": "us-central1"})


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        (None, None, ("1", "512Mi")),
        (2, "8Gi", ("2", "8192Mi")),
        ("4", None, ("4", "2048Mi")),
        ("8000m", 32768, ("8", "32768Mi")),
        (1, "4Gi", ("1", "4096Mi")),
    ],
)
def test_accepted_sizes(cpu: Any, memory: Any, expected: tuple[str, str]) -> None:
    assert jv(cpu=cpu, memory=memory).size == expected


@pytest.mark.parametrize(
    ("cpu", "memory", "message"),
    [
        (3, None, "Cloud Run jobs take 1, 2, 4, 6, 8 vCPU"),
        (0.5, None, "Cloud Run jobs take"),
        ("lots", None, "give a number of vCPU"),
        (1, "5Gi", "needs at least 2 vCPU"),
        (2, "12Gi", "needs at least 4 vCPU"),
        (4, "1Gi", "cpu 4 needs at least 2048Mi"),
        (1, "256Mi", "512Mi to 32Gi"),
        (8, "64Gi", "512Mi to 32Gi"),
        (1, "huge", "quantity like 512Mi"),
    ],
)
def test_rejected_sizes_say_which_rule(cpu: Any, memory: Any, message: str) -> None:
    assert message in error_of(cpu=cpu, memory=memory)


def test_timeout_up_to_168_hours_and_retries_default_to_zero() -> None:
    assert jv(timeout_seconds=168 * 3600).timeout_seconds == 604800
    assert jv().max_retries == 0
    assert "timeout_seconds" in error_of(timeout_seconds=168 * 3600 + 1)
    assert "max_retries" in error_of(max_retries=11)


def test_labels_follow_cloud_runs_rules_and_reserved_prefixes_are_refused() -> None:
    assert jv(labels={"team": "data-eng", "cost_center": ""}).labels["team"] == "data-eng"
    assert "reserved" in error_of(labels={"pushpool-pool": "x"})
    assert "reserved" in error_of(labels={"run.googleapis.com": "x"})
    assert "starting with a letter" in error_of(labels={"Team": "x"})
    assert "values are up to 63" in error_of(labels={"team": "Data Eng"})


def test_vpc_connector_or_direct_egress_not_both() -> None:
    connector = "projects/p/locations/us-central1/connectors/c1"
    assert jv(vpc_connector=connector).vpc_connector == connector
    assert jv(network="default", subnetwork="default").network == "default"
    assert "not both" in error_of(vpc_connector=connector, network="default")
    assert "subnetwork needs network" in error_of(subnetwork="default")


def test_unknown_variables_and_bad_env_names_are_refused() -> None:
    assert "no_such" in error_of(no_such=1)
    assert "not a variable name" in error_of(env={"BAD-NAME": "x"})
    assert "service_account" in error_of(service_account="someone@example.com")
