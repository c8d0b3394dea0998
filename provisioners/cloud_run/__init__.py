"""The ``cloud-run`` pool type: flow runs as Google Cloud Run job executions, no worker.

Modules: :mod:`.gcp` (the one boundary with Google's client libraries), :mod:`.models`
(config and job variables), :mod:`.sizes`, :mod:`.names` (job ids, labels),
:mod:`.jobspec` (the Job a run becomes), :mod:`.status`, :mod:`.links`, :mod:`.infra`
(plan/provision/deprovision). Importing this package imports no Google library; the
first call does.
"""

from __future__ import annotations

from provisioners.cloud_run.provisioner import CloudRunProvisioner

__all__ = ["CloudRunProvisioner"]
