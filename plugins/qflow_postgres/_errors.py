"""Errors of the postgres store: the kernel's store errors, where this qflow has them."""

from __future__ import annotations

try:
    from qflow.store import SchemaError, StoreError
except ImportError:  # a kernel from before store errors had their own classes
    from qflow import QflowError as StoreError  # type: ignore[assignment]

    SchemaError = StoreError  # type: ignore[misc]

__all__ = ["SchemaVersionError", "StoreError"]


class SchemaVersionError(SchemaError):
    """The database's qflow schema is not the version this qflow works with."""
