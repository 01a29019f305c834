"""Azure SDK client factory: the one place that builds ARM clients for the importer.

Adapter edge, no decisions. With IMPORTER_ARM_ENDPOINT set, clients talk plain HTTP to that endpoint
(the armsim stand-in) with a dummy credential, fast polling and short retry backoff; otherwise the
public cloud with DefaultAzureCredential. SDK modules are imported lazily so triggers import fast.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from importer.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential
    from azure.mgmt.apimanagement import ApiManagementClient
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

AUTHORIZATION_API_VERSION = "2022-04-01"
LOCAL_POLLING_INTERVAL = 0.05  # seconds between LRO polls against the stand-in
LOCAL_RETRY_BACKOFF = 0.05  # first retry backoff against the stand-in (Retry-After still wins)
LOCAL_RETRY_BACKOFF_MAX = 1


class StaticCredential:
    """A TokenCredential for the stand-in: never sent (the auth policy is a no-op), never expires."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        from azure.core.credentials import AccessToken

        return AccessToken("armsim-local-token", int(time.time()) + 3600)

    def close(self) -> None:
        """Nothing to release."""


class Clients:
    """Lazily built, cached SDK clients, one per (kind, subscription).

    ``arm_endpoint``, ``polling_interval`` and ``retry_total`` override the settings (tests use them);
    ``pacing=False`` turns off client-side pacing (importer.azure.pacing), to watch ARM's 429s.
    """

    def __init__(self, settings: Settings | None = None, *, arm_endpoint: str | None = None,
                 polling_interval: float | None = None, retry_total: int | None = None,
                 credential: TokenCredential | None = None, pacing: bool = True) -> None:
        self.settings = settings or Settings.from_env()
        endpoint = self.settings.arm_endpoint if arm_endpoint is None else arm_endpoint
        self.arm_endpoint = endpoint.rstrip("/")
        self.local = bool(self.arm_endpoint)
        default_interval = LOCAL_POLLING_INTERVAL if self.local else None
        self.polling_interval = default_interval if polling_interval is None else polling_interval
        self.retry_total = retry_total
        self._credential = credential
        self._cache: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        from importer.azure.pacing import ArmPacer

        # One pacer for every client: ARM's budget is per subscription, whichever client spends it.
        self.pacer = ArmPacer()
        self.pacing = pacing

    @property
    def credential(self) -> TokenCredential:
        with self._lock:
            if self._credential is None:
                if self.local:
                    self._credential = StaticCredential()
                else:
                    from azure.identity import DefaultAzureCredential

                    self._credential = DefaultAzureCredential()
            return self._credential

    def _options(self) -> dict[str, Any]:
        """Keyword arguments shared by every management client."""
        options: dict[str, Any] = {"custom_hook_policy": self.pacer} if self.pacing else {}
        if self.polling_interval is not None:
            options["polling_interval"] = self.polling_interval
        if self.local:
            from azure.core.pipeline.policies import RetryPolicy, SansIOHTTPPolicy

            options["base_url"] = self.arm_endpoint
            # Plain http: a bearer-token policy refuses to send over it, and the stand-in wants none.
            options["authentication_policy"] = SansIOHTTPPolicy()
            retry: dict[str, Any] = {"retry_backoff_factor": LOCAL_RETRY_BACKOFF,
                                     "retry_backoff_max": LOCAL_RETRY_BACKOFF_MAX}
            if self.retry_total is not None:
                retry["retry_total"] = self.retry_total
            options["retry_policy"] = RetryPolicy(**retry)
        elif self.retry_total is not None:
            options["retry_total"] = self.retry_total
        return options

    def _get(self, kind: str, subscription_id: str, build: Any) -> Any:
        key = (kind, subscription_id.lower())
        with self._lock:
            client = self._cache.get(key)
        if client is None:
            client = build()
            with self._lock:
                client = self._cache.setdefault(key, client)
        return client

    def apim(self, subscription_id: str) -> ApiManagementClient:
        def build() -> ApiManagementClient:
            from azure.mgmt.apimanagement import ApiManagementClient

            return ApiManagementClient(self.credential, subscription_id, **self._options())

        client: ApiManagementClient = self._get("apim", subscription_id, build)
        return client

    def cognitive(self, subscription_id: str) -> CognitiveServicesManagementClient:
        def build() -> CognitiveServicesManagementClient:
            from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

            return CognitiveServicesManagementClient(self.credential, subscription_id, **self._options())

        client: CognitiveServicesManagementClient = self._get("cognitive", subscription_id, build)
        return client

    def authorization(self, subscription_id: str) -> AuthorizationManagementClient:
        def build() -> AuthorizationManagementClient:
            from azure.mgmt.authorization import AuthorizationManagementClient

            return AuthorizationManagementClient(self.credential, subscription_id,
                                                 api_version=AUTHORIZATION_API_VERSION, **self._options())

        client: AuthorizationManagementClient = self._get("authorization", subscription_id, build)
        return client

    def close(self) -> None:
        with self._lock:
            clients, self._cache = list(self._cache.values()), {}
        for client in clients:
            client.close()
