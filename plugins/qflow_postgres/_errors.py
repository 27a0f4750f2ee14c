"""Errors of the postgres store (kernel errors are reused where they fit)."""

from __future__ import annotations

try:
    from qflow.store import SchemaError as _Base
except ImportError:  # a kernel from before store errors had their own class
    from qflow import QflowError as _Base  # type: ignore[assignment]

__all__ = ["SchemaVersionError"]


class SchemaVersionError(_Base):
    """The database's qflow schema is not the version this qflow works with."""
