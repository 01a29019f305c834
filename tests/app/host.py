"""Test-side twins of what the host provides around a function call."""

from __future__ import annotations

from typing import Any

from importer.hosting import bindings, indexed, user_function

__all__ = ["Out", "bindings", "indexed", "user_function"]


class Out:
    """A func.Out[T] twin: the host reads what the function set."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value
