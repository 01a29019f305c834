"""Hosting: index function_app once, as the Functions host does, and hand out its user functions.

Used by the demo and the tests to invoke triggers exactly as indexed. ``get_functions()`` may be
built only once per app, so every caller in the process shares this index.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any


@functools.cache
def indexed() -> dict[str, Any]:
    import function_app

    return {str(f.get_function_name()): f for f in function_app.app.get_functions()}


def bindings(name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(indexed()[name].get_function_json())["bindings"]
    return out


def user_function(name: str) -> Callable[..., Any]:
    fn: Callable[..., Any] = indexed()[name].get_user_function()
    return fn
