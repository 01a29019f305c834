"""The store: resources by id (case-insensitive), their ETags, and If-Match / If-None-Match.

Every write gets a new, strictly increasing ETag; a delete takes everything below the id with it.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request

from armsim.answers import ArmError
from armsim.ids import id_key

_etag_counter = itertools.count(1)


def new_etag() -> str:
    """APIM-style opaque ETag (``"AAAAAAAAAAE="``), strictly increasing across the process."""
    return '"' + base64.b64encode(next(_etag_counter).to_bytes(8, "big")).decode() + '"'


def _bare_etag(tag: str) -> str:
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


@dataclass
class Entity:
    """One stored resource: its public JSON body, its ETag and private state the wire never shows."""

    id: str
    body: dict[str, Any]
    etag: str
    private: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.id.rsplit("/", 1)[-1]

    @property
    def type(self) -> str:
        return str(self.body.get("type", ""))


class Store:
    """Resources by id, case-insensitively; children kept in insertion order per collection."""

    def __init__(self) -> None:
        self._items: dict[str, Entity] = {}
        self._collections: dict[str, dict[str, Entity]] = {}
        self._types: dict[str, dict[str, Entity]] = {}
        # Resource groups (and subscriptions) something was ever created in: those exist (a listing
        # under another group answers 404 like ARM); they outlive their resources, as groups do.
        self._scopes: set[str] = set()

    def scope_exists(self, scope: str) -> bool:
        """``/subscriptions/s`` or ``/subscriptions/s/resourceGroups/g``: created in before (any case)."""
        return id_key(scope) in self._scopes

    def add_scopes(self, resource_id: str) -> None:
        parts = id_key(resource_id).strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "subscriptions":
            self._scopes.add("/" + "/".join(parts[:2]))
            if len(parts) >= 4 and parts[2] == "resourcegroups":
                self._scopes.add("/" + "/".join(parts[:4]))

    def get(self, resource_id: str) -> Entity | None:
        return self._items.get(id_key(resource_id))

    def put(self, resource_id: str, body: dict[str, Any], private: dict[str, Any] | None = None,
            ) -> tuple[Entity, bool]:
        """Create or replace; every write gets a new ETag. Returns (entity, created)."""
        key = id_key(resource_id)
        existing = self._items.get(key)
        if existing is not None:
            existing.body = body
            existing.etag = new_etag()
            if private is not None:
                existing.private = private
            self._types.setdefault(existing.type.lower(), {})[key] = existing
            return existing, False
        entity = Entity(resource_id, body, new_etag(), private or {})
        self._items[key] = entity
        self.add_scopes(resource_id)
        collection, _, name = key.rpartition("/")
        self._collections.setdefault(collection, {})[name] = entity
        self._types.setdefault(entity.type.lower(), {})[key] = entity
        return entity, True

    def delete(self, resource_id: str) -> Entity | None:
        """Remove a resource and everything below it (its children, links and assignments)."""
        key = id_key(resource_id)
        entity = self._items.get(key)
        doomed = [k for k in self._items if k == key or k.startswith(key + "/")]
        for k in doomed:
            gone = self._items.pop(k)
            collection, _, name = k.rpartition("/")
            self._collections.get(collection, {}).pop(name, None)
            self._types.get(gone.type.lower(), {}).pop(k, None)
        return entity

    def children(self, collection_id: str) -> list[Entity]:
        """Direct children of ``{parent}/{collection}``, in creation order."""
        return list(self._collections.get(id_key(collection_id), {}).values())

    def of_type(self, resource_type: str, under: str = "") -> list[Entity]:
        """All resources of one ARM type, optionally below an id prefix (a subscription, a group)."""
        prefix = id_key(under) + "/" if under else ""
        return [e for k, e in self._types.get(resource_type.lower(), {}).items() if k.startswith(prefix)]

    def all(self) -> list[Entity]:
        return list(self._items.values())

    def clear(self) -> None:
        self._items.clear()
        self._collections.clear()
        self._types.clear()
        self._scopes.clear()


def check_if_match(request: Request, entity: Entity | None) -> None:
    """If-Match: ``*`` means "must exist"; a tag must equal the current one; else 412."""
    header = request.headers.get("If-Match")
    if header is not None and header.strip():
        if entity is None:
            raise ArmError(412, "PreconditionFailed",
                           "The resource does not exist, so If-Match cannot match.")
        tags = [t for t in header.split(",") if t.strip()]
        if not any(t.strip() == "*" or _bare_etag(t) == _bare_etag(entity.etag) for t in tags):
            raise ArmError(412, "PreconditionFailed",
                           "The entity's ETag does not match the If-Match header: "
                           "it was changed since it was read.")
    if request.headers.get("If-None-Match", "").strip() == "*" and entity is not None:
        raise ArmError(412, "PreconditionFailed", "The resource already exists (If-None-Match: *).")
