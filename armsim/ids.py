"""ARM resource ids as strings: the case-insensitive key of an id, and the subscription, resource group
and resource type it names.

Pure string work, no state. Ground floor: imports nothing from armsim.
"""

from __future__ import annotations

import re

SUBSCRIPTION_RE = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)


def id_key(resource_id: str) -> str:
    """The key an id is stored and looked up by: ARM ids are case-insensitive."""
    return resource_id.rstrip("/").lower()


def resource_group_of(path: str) -> str | None:
    """``/subscriptions/{s}/resourcegroups/{g}`` (lower case) when ``path`` is at or below a group."""
    parts = path.strip("/").split("/")
    if len(parts) >= 4 and parts[0].lower() == "subscriptions" and parts[2].lower() == "resourcegroups":
        return "/" + "/".join(parts[:4]).lower()
    return None


def subscription_of(path: str) -> str | None:
    match = SUBSCRIPTION_RE.match(path)
    return match.group(1) if match else None


def resource_type_of(resource_id: str) -> str:
    """``Microsoft.ApiManagement/service/apis/policies`` for an API policy's id: the namespace after
    the last ``providers`` segment, then every other segment (extension resources included)."""
    parts = [p for p in resource_id.split("/") if p]
    last = max((i for i, p in enumerate(parts) if p.lower() == "providers"), default=-1)
    if last < 0 or last + 1 >= len(parts):
        return ""
    return "/".join([parts[last + 1], *parts[last + 2::2]])
