"""Adapter for backend pools: read every backend once (pools and the members' existence), read one
pool with its ETag, write and delete pools.

I/O only, no decisions (importer/poolsync.py decides). Every SDK call goes through ``errors.call``.
"""

from __future__ import annotations

from typing import Any, cast

from importer.azure.arm import AzureArm, _with_etag
from importer.azure.errors import arm_call, call
from importer.model import ApimRef, NotFound
from importer.pools import ActualPool, PoolSpec, owns


def _trailing(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1].lower()


def pool_from_sdk(obj: Any, etag: str | None = None) -> ActualPool:
    kind = str(getattr(obj.type_properties_type, "value", obj.type_properties_type) or "Single")
    services = (obj.pool.services or []) if obj.pool else []
    members = tuple(sorted((_trailing(s.id or ""), int(s.priority or 0), int(s.weight or 0))
                           for s in services))
    return ActualPool(backend_id=obj.name, members=members, description=obj.description or "", etag=etag,
                      owned=owns(obj.description), is_pool=kind.lower() == "pool")


def list_backends(arm: AzureArm, apim: ApimRef) -> tuple[list[ActualPool], frozenset[str]]:
    """(every backend as an ActualPool, without ETags; the lower-cased ids of all backends)."""
    client = arm.clients.apim(apim.subscription)
    items = call(f"list backends of {apim.name}", lambda: list(
        client.backend.list_by_service(apim.resource_group, apim.name)))
    return [pool_from_sdk(o) for o in items], frozenset(str(o.name).lower() for o in items)


def get_pool(arm: AzureArm, apim: ApimRef, pool_id: str) -> ActualPool | None:
    client = arm.clients.apim(apim.subscription)
    try:
        obj, etag = cast(tuple[Any, str | None], call(f"read backend {pool_id}", lambda: client.backend.get(
            apim.resource_group, apim.name, pool_id, cls=_with_etag)))
    except NotFound:
        return None
    return pool_from_sdk(obj, etag)


def put_pool(arm: AzureArm, apim: ApimRef, spec: PoolSpec, etag: str | None) -> None:
    from azure.mgmt.apimanagement.models import BackendBaseParametersPool, BackendContract, BackendPoolItem

    services = [BackendPoolItem(id=f"{apim.id}/backends/{m.backend_id}", priority=m.priority, weight=m.weight)
                for m in spec.members]
    params = BackendContract(type_properties_type="Pool", description=spec.description,
                             title=f"{spec.deployment} ({spec.mode.value}, pool)",
                             pool=BackendBaseParametersPool(services=services))
    client = arm.clients.apim(apim.subscription)
    with arm_call(f"write pool {spec.backend_id}"):
        client.backend.create_or_update(apim.resource_group, apim.name, spec.backend_id, params,
                                        if_match=etag)
