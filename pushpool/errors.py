"""The SDK's exceptions: one tree rooted at :class:`PushpoolError`."""

from __future__ import annotations


class PushpoolError(Exception):
    """Root of every error the ``pushpool`` SDK raises on its own account."""


class TaskTimeoutError(PushpoolError, TimeoutError):
    """A task attempt ran longer than its ``timeout_seconds``."""


class FlowTimeoutError(PushpoolError, TimeoutError):
    """A flow ran longer than its ``timeout_seconds``."""


class ResultNotSerializable(PushpoolError):
    """A result could not be written with the chosen serializer."""


class ResultNotFound(PushpoolError, KeyError):
    """A result store has nothing under the requested key."""


class InvalidResultKey(PushpoolError, ValueError):
    """A result-store key is empty, absolute or escapes the store."""


class UnsupportedResultStorage(PushpoolError, ValueError):
    """A pool's ``result_storage`` names a store this SDK cannot use (yet)."""


class CacheKeyError(PushpoolError):
    """A task's cache key could not be computed from its inputs."""


class ParameterError(PushpoolError, ValueError):
    """A flow's arguments do not fit its annotations."""


class ReporterError(PushpoolError):
    """The run's reporter (the transport to the control plane) failed."""


class BlockError(PushpoolError):
    """A block could not be loaded: not declared by the run's deployment, missing,
    invalid, or no run is executing. The message names the block."""
