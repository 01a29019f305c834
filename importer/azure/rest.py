"""The JSON seam: ARM requests the typed SDK models can't express, sent through the same client.

azure-mgmt-apimanagement 5.0.0 pins api-version 2024-05-01, whose models lack fields the importer
needs (backend ``credentials.managedIdentity``, ``subscriptionKeyParameterNames.bearer``, diagnostics'
``largeLanguageModel``) and drop them on read and write. Such bodies go out as plain JSON at
``PREVIEW_API_VERSION`` through the SDK client's own pipeline, so pacing, retries, authentication and
error translation are the same as for every typed call; they are read back at the same version.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.exceptions import HttpResponseError

PREVIEW_API_VERSION = "2025-03-01-preview"

JsonBody = dict[str, Any]


def _error_map() -> dict[int, type[HttpResponseError]]:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        ResourceExistsError,
        ResourceNotFoundError,
        ResourceNotModifiedError,
    )

    return {401: ClientAuthenticationError, 404: ResourceNotFoundError, 409: ResourceExistsError,
            304: ResourceNotModifiedError}


class ArmJson:
    """Raw JSON requests on an SDK management client's pipeline (``client._client``)."""

    def __init__(self, client: Any, api_version: str = PREVIEW_API_VERSION) -> None:
        self._pipeline_client = client._client
        self._interval = getattr(client._config, "polling_interval", 30)
        self.api_version = api_version

    def _request(self, method: str, path: str, body: JsonBody | None, if_match: str | None,
                 query: dict[str, str] | None = None) -> Any:
        from azure.core.rest import HttpRequest

        headers = {"Accept": "application/json"}
        if if_match:
            headers["If-Match"] = if_match
        params = {"api-version": self.api_version, **(query or {})}
        url = path if path.startswith("http") else self._pipeline_client.format_url(path)
        return HttpRequest(method, url, params=params, json=body, headers=headers)

    def _run(self, request: Any, ok: tuple[int, ...]) -> Any:
        from azure.core.exceptions import HttpResponseError, map_error
        from azure.mgmt.core.exceptions import ARMErrorFormat

        pipeline_response = self._pipeline_client._pipeline.run(request, stream=False)
        response = pipeline_response.http_response
        if response.status_code not in ok:
            map_error(status_code=response.status_code, response=response, error_map=_error_map())
            raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        return pipeline_response

    @staticmethod
    def _parse(pipeline_response: Any) -> tuple[JsonBody | None, str | None]:
        response = pipeline_response.http_response
        text = response.text() if response.content else ""
        body = response.json() if text.strip() else None
        return body, response.headers.get("ETag")

    def get(self, path: str, query: dict[str, str] | None = None) -> tuple[JsonBody, str | None]:
        """GET an entity and its ETag (404 raises ResourceNotFoundError)."""
        body, etag = self._parse(self._run(self._request("GET", path, None, None, query), (200,)))
        return body or {}, etag

    def list(self, path: str, query: dict[str, str] | None = None) -> Iterator[JsonBody]:
        """Every item of a paged collection, following ``nextLink``."""
        request = self._request("GET", path, None, None, query)
        while True:
            page, _ = self._parse(self._run(request, (200,)))
            yield from (page or {}).get("value") or []
            link = (page or {}).get("nextLink")
            if not link:
                return
            from azure.core.rest import HttpRequest

            request = HttpRequest("GET", link, headers={"Accept": "application/json"})

    def put(self, path: str, body: JsonBody, if_match: str | None = None, *,
            lro: bool = False) -> tuple[JsonBody | None, str | None]:
        """PUT ``body``; with ``lro`` an answer that carries an operation to poll is polled to the
        end exactly as the SDK's ``begin_create_or_update`` does (final state via Location)."""
        pipeline_response = self._run(self._request("PUT", path, body, if_match), (200, 201, 202))
        if lro:  # a 200 too may carry an operation to poll (APIM's update of an existing API)
            from azure.core.polling import LROPoller
            from azure.mgmt.core.polling.arm_polling import ARMPolling

            poller: LROPoller[tuple[JsonBody | None, str | None]] = LROPoller(
                self._pipeline_client, pipeline_response, self._parse,
                ARMPolling(self._interval, lro_options={"final-state-via": "location"}))
            return poller.result()
        return self._parse(pipeline_response)

    def patch(self, path: str, body: JsonBody, if_match: str = "*") -> tuple[JsonBody | None, str | None]:
        return self._parse(self._run(self._request("PATCH", path, body, if_match), (200, 204)))
