"""A small Google Cloud emulator for what drongo does not serve (see ``README`` below).

The real client libraries talk to it over REST (``PUSHPOOL_GCP_EMULATOR_URL``, read only by
``provisioners.cloud_run.gcp``). Every request body is parsed with the library's own
types (``ignore_unknown_fields=False``), so a misspelt field fails the request with 400.
Tests drive the lifecycle of executions (pending, running, succeeded, failed with an exit
code, cancelled), inject errors (404, 409, 429, 503, lost answers) and read the request log.

Served: Cloud Run Admin API v2 (jobs, executions with the ``jobs/-`` wildcard, tasks,
operations), Cloud Logging ``entries:list``, and for provisioning Service Usage,
Artifact Registry, IAM service accounts and Resource Manager project IAM policies.
"""

from emulators.gcp.server import GcpEmulator, running_emulator

__all__ = ["GcpEmulator", "running_emulator"]
