"""Call functions the way the host does: index function_app once, then invoke user functions."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import function_app


@functools.cache  # get_functions() may be built only once per app, as the host does
def _functions() -> dict[str, Any]:
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def bindings(name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(_functions()[name].get_function_json())["bindings"]
    return out


def user_function(name: str) -> Callable[..., Any]:
    fn: Callable[..., Any] = _functions()[name].get_user_function()
    return fn


class Out:
    """A func.Out[T] twin: the host reads what the function set."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value
