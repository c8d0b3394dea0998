"""The ``aci`` pool type: flow runs as Azure Container Instances groups, without a worker.

Modules: :mod:`.arm` (the one Azure SDK boundary), :mod:`.errors`, :mod:`.models` (config
and job variables), :mod:`.names`, :mod:`.spec` (the container group of an attempt),
:mod:`.groups` (container-group calls), :mod:`.status`, :mod:`.quota` (the quota limiter),
:mod:`.links`, :mod:`.infra` (plan/provision/deprovision). Importing this package imports
no Azure module; the first ARM call does.
"""

from __future__ import annotations

from provisioners.aci.provisioner import AciProvisioner

__all__ = ["AciProvisioner"]
