"""Cloud Logging ``entries:list``: entries a test writes for a Cloud Run job, read back."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from emulators.gcp.base import ApiError, parse

Json = dict[str, Any]
_JOB = re.compile(r'resource\.labels\.job_name="([^"]+)"')


class Logging:
    def __init__(self) -> None:
        #: job id -> entries, oldest first
        self.entries: dict[str, list[Json]] = {}

    def write(self, project: str, job_id: str, *lines: str) -> None:
        """What the job's container printed, as Cloud Run would have logged it."""
        for line in lines:
            self.entries.setdefault(job_id, []).append(
                {
                    "logName": f"projects/{project}/logs/run.googleapis.com%2Fstdout",
                    "resource": {"type": "cloud_run_job", "labels": {"job_name": job_id}},
                    "textPayload": line,
                    "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "insertId": f"{job_id}-{len(self.entries[job_id])}",
                }
            )

    def list_entries(self, raw: bytes) -> Json:
        from google.cloud.logging_v2.types import ListLogEntriesRequest

        request = parse(ListLogEntriesRequest, raw)
        match = _JOB.search(request.filter)
        if not request.resource_names or match is None:
            raise ApiError(400, "this emulator lists the entries of one Cloud Run job")
        entries = list(self.entries.get(match.group(1), []))
        if request.order_by.endswith("desc"):
            entries.reverse()
        size = request.page_size or 50
        return {"entries": entries[:size]}
