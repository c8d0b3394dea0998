"""AWS errors as :class:`ProvisionerError`: which ones a later retry may cure."""

from __future__ import annotations

import re
from typing import Any

from provisioners.errors import ProvisionerError

#: Error codes AWS uses for "slow down".
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
#: Error codes for failures on AWS's side.
SERVER_CODES = frozenset(
    {
        "ServerException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
#: A role created moments ago that ECS cannot assume yet (IAM is eventually consistent).
_IAM_PROPAGATION = re.compile(r"unable to assume (the )?role|role .* is not assumable", re.I)


class AwsError(ProvisionerError):
    """An AWS call failed: ``code`` is AWS's error code (or botocore's exception name)."""

    def __init__(self, message: str, *, code: str, operation: str, transient: bool) -> None:
        self.code = code
        self.operation = operation
        super().__init__(message, transient=transient)


def is_iam_propagation(message: str) -> bool:
    return bool(_IAM_PROPAGATION.search(message))


def is_transient(code: str, status: int, message: str) -> bool:
    return (
        code in THROTTLING_CODES
        or code in SERVER_CODES
        or status >= 500
        or is_iam_propagation(message)
    )


def from_client_error(exc: Any, operation: str) -> AwsError:
    """An ``AwsError`` for a botocore ``ClientError``."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return AwsError(
        f"AWS {operation} failed: {code}: {message}".rstrip(": "),
        code=code,
        operation=operation,
        transient=is_transient(code, status, message),
    )


def from_botocore_error(exc: Exception, operation: str, *, network: bool) -> AwsError:
    """An ``AwsError`` for a botocore error raised without an AWS answer.

    ``network`` says it was the connection that failed (worth a retry), not the request.
    """
    return AwsError(
        f"AWS {operation} failed: {exc}",
        code=type(exc).__name__,
        operation=operation,
        transient=network,
    )
