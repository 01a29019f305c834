"""Adapter for `doctor`: the reads a preflight needs beyond the reconciler's (permission read-back,
policy fragments, caches, any ARM resource by id), and the gateway's health endpoint.

I/O only, no decisions: importer/doctor.py says what each answer means. Read-only except where the
import probe names its one throwaway API (written and deleted through AzureArm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from importer.azure.arm import AzureArm
from importer.azure.errors import arm_call, call, translate
from importer.model import ApimRef

MAX_PAGES = 50  # a generic listing stops here: doctor reads a handful of objects, never a fleet


@dataclass(frozen=True)
class Grant:
    """One entry of ARM's permissions listing (one role assignment of the caller): what it allows."""

    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()


def _parts(resource_id: str) -> list[str]:
    return resource_id.strip("/").split("/")


class PreflightArm:
    """Read-only calls on top of AzureArm's clients (the same credential, pacing and retries)."""

    def __init__(self, arm: AzureArm) -> None:
        self.arm = arm
        self.clients = arm.clients

    # -- permissions: Microsoft.Authorization/permissions for the caller ------------------------

    def permissions(self, resource_id: str) -> tuple[Grant, ...]:
        """The caller's grants at a resource group or a (top-level) resource, inherited ones included.
        ABAC conditions are not part of this listing: a conditioned grant shows as a plain one."""
        p = _parts(resource_id)
        if len(p) < 4 or p[0].lower() != "subscriptions" or p[2].lower() != "resourcegroups":
            raise ValueError(f"permissions are read at a resource group or resource, not {resource_id!r}")
        auth = self.clients.authorization(p[1])
        what = f"read the importer's permissions on {resource_id}"
        if len(p) == 4:
            items = call(what, lambda: list(auth.permissions.list_for_resource_group(p[3])))
        elif len(p) == 8 and p[4].lower() == "providers":
            items = call(what, lambda: list(auth.permissions.list_for_resource(
                p[3], p[5], "", p[6], p[7])))
        else:
            raise ValueError(f"permissions are read at a top-level resource, not {resource_id!r}")
        return tuple(Grant(tuple(i.actions or ()), tuple(i.not_actions or ())) for i in items)

    # -- APIM objects a setting names ------------------------------------------------------------

    def cache_ids(self, apim: ApimRef) -> list[str]:
        client = self.clients.apim(apim.subscription)
        items = call(f"list caches of APIM {apim.name}", lambda: list(
            client.cache.list_by_service(apim.resource_group, apim.name)))
        return sorted(str(c.name) for c in items if c.name)

    # -- any ARM resource or collection by id (Event Grid, a Content Safety account, ...) --------

    def get_json(self, path: str, api_version: str) -> dict[str, Any]:
        """GET an ARM resource by id through the management pipeline; NotFound when it is absent."""
        body = self._send(path, {"api-version": api_version}, f"read {path}")
        return body if isinstance(body, dict) else {}

    def list_json(self, path: str, api_version: str) -> list[dict[str, Any]]:
        """Every ``value`` item of an ARM collection, following nextLink."""
        items: list[dict[str, Any]] = []
        url: str | None = path
        params: dict[str, str] | None = {"api-version": api_version}
        for _ in range(MAX_PAGES):
            if not url:
                break
            body = self._send(url, params, f"list {path}")
            items += [v for v in (body.get("value") or []) if isinstance(v, dict)]
            url, params = body.get("nextLink") or None, None
        return items

    def _send(self, url: str, params: dict[str, str] | None, what: str) -> Any:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
        from azure.core.rest import HttpRequest

        sub = _parts(url.split("/subscriptions/", 1)[-1] if "/subscriptions/" in url else url)[0]
        # Any single-version management client sends a raw request through the shared pipeline
        # (credential, pacing, retries); the multi-version authorization client can't.
        client = self.clients.apim(sub)
        with arm_call(what):
            response = client._send_request(HttpRequest("GET", url, params=params))
        if response.status_code == 404:
            raise translate(ResourceNotFoundError(response=response), what)
        if response.status_code >= 400:
            raise translate(HttpResponseError(response=response), what)
        return response.json() if response.content else {}
