"""The ``ecs`` pool type: flow runs as ECS tasks on Fargate, pushed without a worker.

Modules: :mod:`.aws` (the one boto3 boundary), :mod:`.models` (config and job
variables), :mod:`.taskdef` (content-addressed task definitions), :mod:`.runspec`
(RunTask requests), :mod:`.launch` (retries), :mod:`.ratelimit`, :mod:`.status`,
:mod:`.infra` (plan/provision/deprovision), :mod:`.policy` (the control plane's IAM
policy). Importing this package does not import boto3; the first AWS call does.
"""

from __future__ import annotations

from provisioners.ecs.provisioner import EcsProvisioner

__all__ = ["EcsProvisioner"]
