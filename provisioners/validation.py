"""Validating what users give a provisioner, with errors that name fields, never values."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from provisioners.errors import ProvisionerError

M = TypeVar("M", bound=BaseModel)


def job_variables(model: type[M], raw: dict[str, Any]) -> M:
    """``raw`` validated as ``model``; a ``ProvisionerError`` naming each bad field (the
    values are not echoed: job variables may carry secrets)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'job_variables'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ProvisionerError(f"invalid job variables: {problems}") from None
