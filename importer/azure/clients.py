"""Azure SDK client factory: the one place that builds ARM clients for the importer.

Adapter edge, no decisions. With IMPORTER_ARM_ENDPOINT set, clients talk plain HTTP to that endpoint
(the armsim stand-in) with an unsigned JWT naming the importer's local object id, fast polling and
short retry backoff; otherwise the public cloud with DefaultAzureCredential. SDK modules are
imported lazily so triggers import fast.
"""

from __future__ import annotations

import base64
import binascii
import json
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


ARM_SCOPE = "https://management.azure.com/.default"
# The importer's object id in local mode: what its stand-in token carries in ``oid``. Distinct from
# the stand-in's "unknown caller" (a request without a JWT), so the importer's own writes are told
# apart from hand edits there as they are in Azure.
LOCAL_PRINCIPAL_ID = "00000000-0000-0000-0000-00000000a001"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT (``alg: none``) carrying ``claims``: the stand-in reads, never verifies."""
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64url(json.dumps(claims, sort_keys=True).encode())}."


def token_object_id(token: str) -> str | None:
    """The ``oid`` claim of a JWT access token (not verified: only used to recognise our own
    writes in change events), or None when the token is not a JWT or has no ``oid``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    oid = claims.get("oid") if isinstance(claims, dict) else None
    return oid.lower() if isinstance(oid, str) and oid else None


class StaticCredential:
    """A TokenCredential for the stand-in: an unsigned JWT whose ``oid`` is ``object_id``, sent as
    a bearer token over plain http (LocalBearerPolicy); never expires."""

    def __init__(self, object_id: str = LOCAL_PRINCIPAL_ID) -> None:
        self.object_id = object_id

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        from azure.core.credentials import AccessToken

        expires = int(time.time()) + 3600
        token = unsigned_jwt({"aud": "https://management.azure.com/", "oid": self.object_id,
                              "exp": expires, "iss": "armsim-local"})
        return AccessToken(token, expires)

    def close(self) -> None:
        """Nothing to release."""


def _local_bearer_policy(credential: TokenCredential) -> Any:
    """Sends ``credential``'s token over plain http to the stand-in (azure-core's bearer policy
    refuses http), so the stand-in knows who wrote what."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class LocalBearerPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            token = credential.get_token(ARM_SCOPE).token
            request.http_request.headers["Authorization"] = f"Bearer {token}"

    return LocalBearerPolicy()


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

    def object_id(self) -> str | None:
        """The importer's own object id: the ``oid`` claim of its ARM token (None when the
        token is not a JWT). Change events caused by it are the importer's own writes."""
        return token_object_id(self.credential.get_token(ARM_SCOPE).token)

    def _options(self) -> dict[str, Any]:
        """Keyword arguments shared by every management client."""
        options: dict[str, Any] = {"custom_hook_policy": self.pacer} if self.pacing else {}
        if self.polling_interval is not None:
            options["polling_interval"] = self.polling_interval
        if self.local:
            from azure.core.pipeline.policies import RetryPolicy

            options["base_url"] = self.arm_endpoint
            options["authentication_policy"] = _local_bearer_policy(self.credential)
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
