"""A status pass: one ARM list, one Resource Graph query, a GET only where the graph
shows an end (for the exit code) or nothing; stale graph rows; the graph failing."""

from __future__ import annotations

import uuid

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from emulators.azure.server import SUBSCRIPTION, Emulator

from provisioners.aci import AciProvisioner
from provisioners.aci.arm import ArmClient
from provisioners.aci.graph import pool_query, pool_states
from provisioners.base import InfraRef, InfraState, SubmitRequest

GROUP_PATH = "/containerGroups/"


def _request() -> SubmitRequest:
    run_id = str(uuid.uuid4())
    return SubmitRequest(run_id, 1, "flow", "dep", env={"PUSHPOOL_FLOW_RUN_ID": run_id},
                         job_variables={"command": ["sleep", "30"]})  # fmt: skip


def _gets(emulator: Emulator) -> int:
    """Single-group GETs (not the list)."""
    return len([r for r in emulator.azure.calls("GET", GROUP_PATH) if "/logs" not in r.path])


def _pass(p: AciProvisioner, emulator: Emulator, refs: list[InfraRef]) -> list[InfraState]:
    emulator.azure.requests.clear()
    many = p.status_many(refs)
    return [many[r.id].state for r in refs]


def test_running_groups_cost_one_list_and_one_query(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    refs = [provisioner.submit(_request()) for _ in range(6)]
    for ref in refs[:4]:
        emulator.azure.start(ref.data["name"])
    emulator.azure.exit(refs[3].data["name"], 137, "OOMKilled")
    provisioner.teardown(refs[5])
    states = _pass(provisioner, emulator, refs)
    assert states == [InfraState.RUNNING] * 3 + [
        InfraState.EXITED, InfraState.PENDING, InfraState.MISSING,
    ]  # fmt: skip
    assert len(emulator.azure.calls("GET", "/containerGroups")) - _gets(emulator) == 1  # list
    assert len(emulator.azure.calls("POST", "ResourceGraph")) == 1
    assert _gets(emulator) == 1  # only the exited group, for its exit code
    assert provisioner.status_many([refs[3]])[refs[3].id].exit_code == 137


def test_a_stale_graph_row_is_a_hint_and_the_next_scan_settles_it(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    a = emulator.azure
    a.graph_scan_seconds = 3600.0  # runtime changes reach Resource Graph only on a scan
    ref = provisioner.submit(_request())
    a.start(ref.data["name"])
    # Indexed at the PUT (Creating, Waiting): the graph cannot say it runs, so a GET does,
    # once: while the graph keeps that row, the group is believed running.
    assert _pass(provisioner, emulator, [ref]) == [InfraState.RUNNING] and _gets(emulator) == 1
    assert _pass(provisioner, emulator, [ref]) == [InfraState.RUNNING] and _gets(emulator) == 0
    provisioner.groups.stop(ref.data["name"])  # an ARM write: re-indexed at once
    assert _pass(provisioner, emulator, [ref]) == [InfraState.EXITED]
    other = provisioner.submit(_request())
    a.start(other.data["name"])
    a.graph_scan_seconds = 0.0  # a full scan: the index is current
    assert _pass(provisioner, emulator, [other]) == [InfraState.RUNNING] and _gets(emulator) == 0
    a.graph_scan_seconds = 3600.0
    a.exit(other.data["name"], 3)  # not an ARM write: the graph still says Running
    assert _pass(provisioner, emulator, [other]) == [InfraState.RUNNING]
    a.graph_scan_seconds = 0.0
    status = provisioner.status_many([other])[other.id]
    assert (status.state, status.exit_code) == (InfraState.EXITED, 3)


def test_a_failing_graph_falls_back_to_one_get_each(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    refs = [provisioner.submit(_request()) for _ in range(3)]
    for ref in refs:
        emulator.azure.start(ref.data["name"])
    emulator.azure.inject("POST", "ResourceGraph", 403, "AuthorizationFailed")
    assert _pass(provisioner, emulator, refs) == [InfraState.RUNNING] * 3
    assert _gets(emulator) == 3


def test_the_graph_pages_past_its_page_size(
    provisioner: AciProvisioner, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("provisioners.aci.graph.PAGE", 2)
    refs = [provisioner.submit(_request()) for _ in range(5)]
    for ref in refs:
        emulator.azure.start(ref.data["name"])
    rows = pool_states(provisioner.arm, "conf", "demo")
    assert sorted(rows) == sorted(r.data["name"] for r in refs)
    assert all(row.running for row in rows.values())
    assert len(emulator.azure.calls("POST", "ResourceGraph")) == 3


def test_the_query_names_only_this_pools_groups(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    mine = provisioner.submit(_request())
    other = AciProvisioner("other", provisioner.config.model_dump(), arm=provisioner.arm,
                           limiter=provisioner.limiter).submit(_request())  # fmt: skip
    assert set(pool_states(provisioner.arm, "conf", "demo")) == {mine.data["name"]}
    assert set(pool_states(provisioner.arm, "CONF", "other")) == {other.data["name"]}
    assert "'o\\'k'" in pool_query("rg", "o'k")  # quoted as a KQL literal


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"subscriptions": [SUBSCRIPTION], "query": "resources | take 1"}, "InvalidQuery"),
        ({"subscriptions": [SUBSCRIPTION]}, "BadRequest"),  # query is required
        ({"subscriptions": [SUBSCRIPTION], "query": "resources", "top": 1}, "BadRequest"),
    ],
)
def test_the_emulated_graph_refuses_what_it_cannot_answer(
    emulator: Emulator, body: dict[str, object], code: str
) -> None:
    """Raw requests (the SDK itself would drop an unknown field before sending it)."""
    answer = httpx.post(
        f"{emulator.url}/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01",
        json=body,
        headers={"Authorization": "Bearer emulator"},
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code


def test_the_sdk_reads_the_emulated_answer(emulator: Emulator) -> None:
    client = ArmClient(SUBSCRIPTION, retry_total=0).client("graph")
    answer = client.resources({"subscriptions": [SUBSCRIPTION], "query": pool_query("x", "y")})
    assert (answer.total_records, answer.data) == (0, [])
    with pytest.raises(HttpResponseError, match="InvalidQuery"):
        client.resources({"subscriptions": [SUBSCRIPTION], "query": "resources | take 1"})
