"""Errors raised while preparing a flow run (before the flow function is called).

Each one is reported to the service as a FAILED state whose ``error.type`` is the
class name, e.g. ``ParameterValidationError``.
"""

from __future__ import annotations


class SetupError(Exception):
    """Base class: the flow could not be started."""


class SpecError(SetupError):
    """The flow-run spec returned by the service is malformed."""


class SourceError(SetupError):
    """The flow's code could not be obtained (bad local path, git failure...)."""


class EntrypointError(SetupError):
    """The entrypoint is malformed, escapes the source root, or does not exist."""


class FlowImportError(SetupError):
    """Importing the flow's file raised an exception."""


class ParameterValidationError(SetupError):
    """The parameters do not match the parameter schema or the function signature."""
