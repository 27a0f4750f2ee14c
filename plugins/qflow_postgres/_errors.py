"""Errors of the postgres store: the kernel's store errors, where this qflow has them."""

from __future__ import annotations

try:
    from qflow.store import SchemaError, StoreError
except ImportError:  # a kernel from before store errors had their own classes
    from qflow import QflowError as StoreError  # type: ignore[assignment]

    SchemaError = StoreError  # type: ignore[misc]

try:
    from qflow.store import closed_error
except ImportError:  # a kernel from before every store said so the same way

    def closed_error(store: str) -> StoreError:  # type: ignore[misc]
        return StoreError(f"the store {store} is closed: close() was called on it (by the application, "
                          "or AsyncEngine.aclose()); open the store again (a new Engine) to go on")

__all__ = ["SchemaVersionError", "StoreError", "closed_error"]


class SchemaVersionError(SchemaError):
    """The database's qflow schema is not the version this qflow works with."""
