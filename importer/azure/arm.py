"""Adapter over the Azure SDKs: read truth into model values, write one Change at a time.

I/O only, no decisions: discover.py decides what to read and apply.py in which order to write.
Every SDK call goes through ``errors.call`` so callers only ever see importer errors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar, cast

from importer.azure.clients import Clients
from importer.azure.errors import arm_call, call, translate
from importer.azure.rest import ArmJson, JsonBody
from importer.identity import prefix_filter
from importer.model import (
    Account,
    AccountRef,
    ActualApi,
    ActualBackend,
    ActualSubscription,
    ApimRef,
    ApimService,
    ApiSpec,
    BackendSpec,
    Deployment,
    DiagnosticSpec,
    NotFound,
    PolicySpec,
    ProductLinkSpec,
    RoleAssignmentSpec,
    Scope,
    SubscriptionSpec,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

ROLE_DEFINITION_PREFIX = "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def _with_etag(pipeline_response: Any, deserialized: Any, headers: Any) -> tuple[Any, str | None]:
    """``cls=`` hook: keep the entity and its ETag header (APIM returns it on GET)."""
    etag = headers.get("ETag") if headers else None
    return deserialized, etag


def _s(value: Any) -> str:
    """Enum or str → str (the SDK returns either, depending on the value)."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _trailing_guid(role_definition_id: str) -> str:
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


# ---------------------------------------------------------------------------------------------
# SDK object → model value


def account_from_sdk(obj: Any, deployments: Iterable[Any] = ()) -> Account:
    ref = AccountRef.parse(obj.id)
    props = obj.properties
    endpoints = tuple(sorted((props.endpoints or {}).items())) if props else ()
    return Account(
        ref=ref,
        kind=_s(obj.kind),
        endpoint=(props.endpoint or "") if props else "",
        location=obj.location or "",
        tags=tuple(sorted((obj.tags or {}).items())),
        endpoints=endpoints,
        deployments=tuple(sorted((deployment_from_sdk(d) for d in deployments), key=lambda d: d.name)),
    )


def deployment_from_sdk(obj: Any) -> Deployment:
    props = obj.properties
    model = props.model if props else None
    return Deployment(
        name=obj.name,
        model_name=(model.name or "") if model else "",
        model_format=(model.format or "") if model else "",
        model_version=(model.version or "") if model else "",
        sku=(obj.sku.name or "") if obj.sku else "",
        provisioning_state=_s(props.provisioning_state) if props else "",
        capacity=obj.sku.capacity if obj.sku and isinstance(obj.sku.capacity, int) else None,
    )


def api_from_json(obj: JsonBody, operations: Iterable[tuple[str, str]] = ()) -> ApiSpec:
    """An API as read at the JSON seam's api-version (which has ``bearer`` in the key names)."""
    props = obj.get("properties") or {}
    keys = props.get("subscriptionKeyParameterNames") or {}
    return ApiSpec(
        api_id=str(obj.get("name") or ""),
        display_name=props.get("displayName") or "",
        description=props.get("description") or "",
        path=props.get("path") or "",
        service_url=props.get("serviceUrl") or None,
        protocols=tuple(sorted(str(p) for p in (props.get("protocols") or ()))),
        subscription_required=bool(props.get("subscriptionRequired")),
        key_header=keys.get("header") or "",
        key_query=keys.get("query") or "",
        key_bearer=str(keys.get("bearer") or "").lower() == "enabled",
        operations=tuple(sorted(operations)),
    )


def backend_from_json(obj: JsonBody) -> BackendSpec:
    props = obj.get("properties") or {}
    identity = ((props.get("credentials") or {}).get("managedIdentity") or {})
    return BackendSpec(
        backend_id=str(obj.get("name") or ""),
        url=props.get("url") or "",
        description=props.get("description") or "",
        title=props.get("title") or "",
        protocol=str(props.get("protocol") or ""),
        circuit_breaker=bool((props.get("circuitBreaker") or {}).get("rules")),
        identity_resource=identity.get("resource") or None,
    )


def diagnostic_from_json(api_id: str, obj: JsonBody) -> DiagnosticSpec:
    props = obj.get("properties") or {}
    llm = props.get("largeLanguageModel") or {}
    return DiagnosticSpec(
        api_id=api_id, name=str(obj.get("name") or ""), logger=str(props.get("loggerId") or ""),
        metrics=bool(props.get("metrics")),
        llm_logging=str(llm.get("logs") or "").lower() == "enabled")


# Messages up to 32 KB are logged in one entry (larger ones in 32 KB chunks); 2 MB is the cap.
LLM_LOG_BYTES = 262144


def diagnostic_body(spec: DiagnosticSpec, apim: ApimRef, *, create: bool) -> JsonBody:
    """What the importer sets on a diagnostic: the logger and its own switch (PATCH on update, so
    settings made by others on the same diagnostic are kept)."""
    from importer.render import DIAGNOSTIC_APP_INSIGHTS

    props: JsonBody = {"loggerId": f"{apim.id}/loggers/{spec.logger.rstrip('/').rsplit('/', 1)[-1]}"}
    if spec.name == DIAGNOSTIC_APP_INSIGHTS:
        props["metrics"] = bool(spec.metrics)
        if create:
            props.update({"alwaysLog": "allErrors", "httpCorrelationProtocol": "W3C",
                          "logClientIp": False, "verbosity": "information",
                          "sampling": {"samplingType": "fixed", "percentage": 100}})
    if spec.llm_logging is not None:
        state = "enabled" if spec.llm_logging else "disabled"
        messages = {"messages": "all", "maxSizeInBytes": LLM_LOG_BYTES}
        props["largeLanguageModel"] = ({"logs": state, "requests": messages, "responses": messages}
                                       if spec.llm_logging else {"logs": state})
    return {"properties": props}


def role_from_sdk(obj: Any) -> RoleAssignmentSpec:
    return RoleAssignmentSpec(
        name=obj.name,
        scope=obj.scope or "",
        role_definition_guid=_trailing_guid(obj.role_definition_id or ""),
        principal_id=(obj.principal_id or "").lower(),
        description=obj.description or "",
    )


# ---------------------------------------------------------------------------------------------


class AzureArm:
    """Reads and writes through the real SDK clients (or the stand-in, via Clients)."""

    # Reads of one account are independent (their ids follow from the account id) and a plan's
    # writes come in two dependency waves, so each is sent at once: a run costs a few round trips,
    # not one per object. Tasks never submit tasks, so a fleet pass waiting on them can't deadlock.
    POOL_SIZE = 32

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run one adapter call on the shared pool (the SDK clients are safe to share)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.POOL_SIZE, thread_name_prefix="arm")
        return self._pool.submit(fn, *args, **kwargs)

    def json(self, subscription: str) -> ArmJson:
        """The JSON seam on the APIM client of ``subscription`` (same pipeline, newer api-version)."""
        return ArmJson(self.clients.apim(subscription))

    # -- Cognitive Services ----------------------------------------------------------------------

    def resource_endpoint(self, resource_id: str) -> str:
        """``properties.endpoint`` of a Cognitive Services account (a Content Safety resource)."""
        ref = AccountRef.parse(resource_id)
        cs = self.clients.cognitive(ref.subscription)
        obj = call(f"read Content Safety resource {resource_id}",
                   lambda: cs.accounts.get(ref.resource_group, ref.name))
        return str((obj.properties.endpoint if obj.properties else "") or "")

    def get_account(self, ref: AccountRef, *, with_deployments: bool = True) -> Account:
        cs = self.clients.cognitive(ref.subscription)
        obj = call(f"read account {ref}", lambda: cs.accounts.get(ref.resource_group, ref.name))
        deps: list[Any] = []
        if with_deployments:
            deps = call(f"list deployments of {ref}",
                        lambda: list(cs.deployments.list(ref.resource_group, ref.name)))
        return account_from_sdk(obj, deps)

    def list_deployments(self, ref: AccountRef) -> tuple[Deployment, ...]:
        cs = self.clients.cognitive(ref.subscription)
        deps = call(f"list deployments of {ref}",
                    lambda: list(cs.deployments.list(ref.resource_group, ref.name)))
        return tuple(sorted((deployment_from_sdk(d) for d in deps), key=lambda d: d.name))

    def list_accounts(self, scope: Scope) -> list[Account]:
        """Accounts in a scope, without deployments (one paged read per scope)."""
        cs = self.clients.cognitive(scope.subscription)
        try:
            with arm_call(f"list accounts in {scope.id}"):
                if scope.resource_group:
                    items = list(cs.accounts.list_by_resource_group(scope.resource_group))
                else:
                    items = list(cs.accounts.list())
        except NotFound as exc:
            what = (f"resource group {scope.resource_group} not found in subscription {scope.subscription}"
                    if scope.resource_group else f"subscription {scope.subscription} not found")
            raise NotFound(f"scope {scope.id}: {what}; check IMPORTER_SCOPES or --scopes", exc.code) from exc
        out = []
        for obj in items:
            if _s(obj.kind) in ("OpenAI", "AIServices"):
                out.append(account_from_sdk(obj))
        return out

    # -- API Management service ------------------------------------------------------------------

    def get_apim(self, ref: ApimRef, *, check_cache: bool = False) -> ApimService:
        client = self.clients.apim(ref.subscription)
        try:
            obj = call(f"read APIM {ref.name}",
                       lambda: client.api_management_service.get(ref.resource_group, ref.name))
        except NotFound as exc:
            where = (f"resource group {ref.resource_group} not found in subscription {ref.subscription}"
                     if exc.code == "ResourceGroupNotFound" else
                     f"not found in resource group {ref.resource_group} (subscription {ref.subscription})")
            raise NotFound(f"APIM service {ref.name}: {where}; check IMPORTER_APIM_ID or --apim",
                           exc.code) from exc
        identity = obj.identity
        principal = None
        if identity is not None and "SystemAssigned" in _s(identity.type) and identity.principal_id:
            principal = identity.principal_id.lower()
        has_cache = False
        if check_cache:
            caches = call(f"list caches of APIM {ref.name}",
                          lambda: list(client.cache.list_by_service(ref.resource_group, ref.name)))
            has_cache = bool(caches)
        return ApimService(ref=ref, principal_id=principal, gateway_url=obj.gateway_url or "",
                           has_external_cache=has_cache)

    def enable_apim_identity(self, ref: ApimRef) -> None:
        from azure.mgmt.apimanagement.models import (
            ApiManagementServiceIdentity,
            ApiManagementServiceUpdateParameters,
        )

        client = self.clients.apim(ref.subscription)
        params = ApiManagementServiceUpdateParameters(
            identity=ApiManagementServiceIdentity(type="SystemAssigned"))
        with arm_call(f"turn on the system identity of APIM {ref.name}"):
            client.api_management_service.begin_update(ref.resource_group, ref.name, params).result()

    # -- APIs --------------------------------------------------------------------------------------

    def get_api(self, apim: ApimRef, api_id: str, *, operations: bool = True) -> ActualApi | None:
        """The API with its ETag; its operations too unless the caller lists them itself. Whose it
        is, the adapter does not say: ``discover`` decides that, by ``identity``'s one rule."""
        rest = self.json(apim.subscription)
        try:
            obj, etag = call(f"read API {api_id}", lambda: rest.get(f"{apim.id}/apis/{api_id}"))
        except NotFound:
            return None
        spec = api_from_json(obj)
        if operations:
            spec = replace(spec, operations=self.list_operations(apim, api_id))
        return ActualApi(spec=spec, etag=etag)

    def list_operations(self, apim: ApimRef, api_id: str) -> tuple[tuple[str, str], ...]:
        client = self.clients.apim(apim.subscription)
        ops = call(f"list operations of API {api_id}", lambda: list(
            client.api_operation.list_by_api(apim.resource_group, apim.name, api_id)))
        return tuple(sorted((_s(o.method).upper(), o.url_template or "") for o in ops))

    def list_apis(self, apim: ApimRef) -> list[ApiSpec]:
        """Every API (without operations): for path clashes and orphan search."""
        rest = self.json(apim.subscription)
        items = call(f"list APIs of {apim.name}", lambda: list(rest.list(f"{apim.id}/apis")))
        return [api_from_json(o) for o in items]

    def list_apis_named(self, apim: ApimRef, prefix: str) -> list[ApiSpec]:
        """APIs whose name starts with ``prefix`` (one account's, every mode) in one read, without
        operations or ETags."""
        rest = self.json(apim.subscription)
        items = call(f"list APIs named {prefix}*", lambda: list(rest.list(
            f"{apim.id}/apis", {"$filter": prefix_filter(prefix)})))
        return [api_from_json(o) for o in items]

    def put_api(self, apim: ApimRef, spec: ApiSpec, etag: str | None, *,
                document: bool = True) -> ApiSpec:
        """Import the API's document with its properties (``document``), or write its properties
        alone (the API and its operations exist). Returns the API as APIM holds it afterwards: an
        import may replace what the PUT said with what the document says (apply.py)."""
        keys: JsonBody = {"header": spec.key_header, "query": spec.key_query}
        if spec.key_bearer:
            keys["bearer"] = "enabled"
        props: JsonBody = {
            "displayName": spec.display_name, "description": spec.description, "path": spec.path,
            "serviceUrl": spec.service_url, "protocols": list(spec.protocols),
            "subscriptionRequired": spec.subscription_required,
            "subscriptionKeyParameterNames": keys, "apiType": "http",
        }
        if document:
            props.update({"format": spec.import_format, "value": spec.import_value})
        rest = self.json(apim.subscription)
        what = f"write API {spec.api_id}" if document else f"write the properties of API {spec.api_id}"
        with arm_call(what):
            result, _ = rest.put(f"{apim.id}/apis/{spec.api_id}", {"properties": props}, etag, lro=True)
        if not result:  # no body at the end of the operation: read what APIM holds
            held = self.get_api(apim, spec.api_id, operations=False)
            if held is None:
                raise NotFound(f"API {spec.api_id} is gone right after it was written")
            return held.spec
        return api_from_json(result)

    def delete_api(self, apim: ApimRef, api_id: str, etag: str | None) -> None:
        client = self.clients.apim(apim.subscription)
        self._found(f"delete API {api_id}", lambda: client.api.begin_delete(
            apim.resource_group, apim.name, api_id, if_match=etag or "*", delete_revisions=True).result())

    # -- policy ------------------------------------------------------------------------------------

    def get_policy(self, apim: ApimRef, api_id: str) -> tuple[PolicySpec | None, str | None]:
        client = self.clients.apim(apim.subscription)
        try:
            obj, etag = cast(tuple[Any, str | None], call(
                f"read policy of API {api_id}", lambda: client.api_policy.get(
                    apim.resource_group, apim.name, api_id, "policy", format="xml", cls=_with_etag)))
        except NotFound:
            return None, None
        return PolicySpec(api_id=api_id, xml=obj.value or ""), etag

    def put_policy(self, apim: ApimRef, spec: PolicySpec, etag: str | None) -> None:
        from azure.mgmt.apimanagement.models import PolicyContract

        client = self.clients.apim(apim.subscription)
        with arm_call(f"write policy of API {spec.api_id}"):
            client.api_policy.create_or_update(apim.resource_group, apim.name, spec.api_id, "policy",
                                               PolicyContract(value=spec.xml, format="xml"),
                                               if_match=etag)

    # -- backends ----------------------------------------------------------------------------------

    def get_backend(self, apim: ApimRef, backend_id: str) -> ActualBackend | None:
        rest = self.json(apim.subscription)
        try:
            obj, etag = call(f"read backend {backend_id}",
                             lambda: rest.get(f"{apim.id}/backends/{backend_id}"))
        except NotFound:
            return None
        spec = backend_from_json(obj)
        return ActualBackend(spec=spec, etag=etag)

    def list_backends(self, apim: ApimRef) -> list[BackendSpec]:
        rest = self.json(apim.subscription)
        items = call(f"list backends of {apim.name}", lambda: list(rest.list(f"{apim.id}/backends")))
        return [backend_from_json(o) for o in items]

    def list_backends_named(self, apim: ApimRef, prefix: str) -> list[ActualBackend]:
        """Backends whose name starts with ``prefix`` (one account's: main, embeddings, safety) in
        one read. A listing carries no ETags: a write decided on it re-reads the backend first."""
        rest = self.json(apim.subscription)
        items = call(f"list backends named {prefix}*", lambda: list(rest.list(
            f"{apim.id}/backends", {"$filter": prefix_filter(prefix)})))
        specs = [backend_from_json(o) for o in items]
        return [ActualBackend(spec=s) for s in specs]

    def put_backend(self, apim: ApimRef, spec: BackendSpec, etag: str | None) -> None:
        props: JsonBody = {"url": spec.url, "protocol": spec.protocol, "description": spec.description}
        if spec.title:
            props["title"] = spec.title
        if spec.circuit_breaker:
            # Trip on the first throttle or server error, for a minute or as long as Retry-After
            # says: a pool's retry then goes to the next member at once (Microsoft's AI-Gateway
            # samples use the same rule for pool members).
            props["circuitBreaker"] = {"rules": [{
                "name": "ai-importer-breaker",
                "failureCondition": {"count": 1, "interval": "PT1M", "statusCodeRanges": [
                    {"min": 429, "max": 429}, {"min": 500, "max": 599}]},
                "tripDuration": "PT1M", "acceptRetryAfter": True}]}
        if spec.identity_resource:
            # The backend's calls carry a token of APIM's system-assigned identity for this resource.
            props["credentials"] = {"managedIdentity": {"resource": spec.identity_resource}}
        rest = self.json(apim.subscription)
        with arm_call(f"write backend {spec.backend_id}"):
            rest.put(f"{apim.id}/backends/{spec.backend_id}", {"properties": props}, etag)

    def delete_backend(self, apim: ApimRef, backend_id: str, etag: str | None) -> None:
        client = self.clients.apim(apim.subscription)
        self._found(f"delete backend {backend_id}", lambda: client.backend.delete(
            apim.resource_group, apim.name, backend_id, if_match=etag or "*"))

    # -- diagnostics and loggers -------------------------------------------------------------------

    def list_diagnostics(self, apim: ApimRef, api_id: str) -> tuple[DiagnosticSpec, ...]:
        """The API's diagnostics (the listing carries no ETags; writes send If-Match *)."""
        rest = self.json(apim.subscription)
        try:
            items = call(f"list diagnostics of API {api_id}",
                         lambda: list(rest.list(f"{apim.id}/apis/{api_id}/diagnostics")))
        except NotFound:
            return ()
        return tuple(diagnostic_from_json(api_id, o) for o in items)

    def put_diagnostic(self, apim: ApimRef, spec: DiagnosticSpec, etag: str | None, *, create: bool) -> None:
        rest = self.json(apim.subscription)
        path = f"{apim.id}/apis/{spec.api_id}/diagnostics/{spec.name}"
        with arm_call(f"write diagnostic {spec.name} of API {spec.api_id}"):
            if create:
                rest.put(path, diagnostic_body(spec, apim, create=True), etag)
            else:
                rest.patch(path, diagnostic_body(spec, apim, create=False), etag or "*")

    def logger_type(self, apim: ApimRef, logger_id: str) -> str | None:
        """The type of an APIM logger (applicationInsights, azureMonitor, …), or None when absent."""
        client = self.clients.apim(apim.subscription)
        try:
            obj = call(f"read logger {logger_id}",
                       lambda: client.logger.get(apim.resource_group, apim.name, logger_id))
        except NotFound:
            return None
        return _s(obj.logger_type)

    # -- products ----------------------------------------------------------------------------------

    def list_product_links(self, apim: ApimRef, api_id: str) -> tuple[ProductLinkSpec, ...]:
        client = self.clients.apim(apim.subscription)
        try:
            items = call(f"list products of API {api_id}", lambda: list(
                client.api_product.list_by_apis(apim.resource_group, apim.name, api_id)))
        except NotFound:
            return ()
        names = sorted(str(p.name) for p in items if p.name)
        return tuple(ProductLinkSpec(product_id=n, api_id=api_id) for n in names)

    def list_product_apis(self, apim: ApimRef, product_id: str) -> list[str]:
        """Ids of the APIs linked to a product (one paged read for the whole fleet)."""
        client = self.clients.apim(apim.subscription)
        items = call(f"list APIs of product {product_id}", lambda: list(
            client.product_api.list_by_product(apim.resource_group, apim.name, product_id)))
        return [str(a.name) for a in items if a.name]

    @staticmethod
    def _found(what: str, send: Callable[[], Any]) -> bool:
        """Send a read or a delete; False when ARM answers that it is not there (a ``delete_``
        succeeds if already gone, the Azure SDK's rule)."""
        try:
            call(what, send)
        except NotFound:
            return False
        return True

    def fragment_exists(self, apim: ApimRef, fragment_id: str) -> bool:
        client = self.clients.apim(apim.subscription)
        return self._found(f"read policy fragment {fragment_id}", lambda: client.policy_fragment.get(
            apim.resource_group, apim.name, fragment_id))

    def product_exists(self, apim: ApimRef, product_id: str) -> bool:
        client = self.clients.apim(apim.subscription)
        return self._found(f"read product {product_id}", lambda: client.product.get(
            apim.resource_group, apim.name, product_id))

    def link_product(self, apim: ApimRef, link: ProductLinkSpec) -> None:
        client = self.clients.apim(apim.subscription)
        with arm_call(f"link API {link.api_id} to product {link.product_id}"):
            client.product_api.create_or_update(apim.resource_group, apim.name, link.product_id,
                                                link.api_id)

    def unlink_product(self, apim: ApimRef, link: ProductLinkSpec) -> None:
        client = self.clients.apim(apim.subscription)
        self._found(f"unlink API {link.api_id} from product {link.product_id}",
                    lambda: client.product_api.delete(apim.resource_group, apim.name, link.product_id,
                                                      link.api_id))

    # -- subscriptions (the probe key) ------------------------------------------------------------

    def get_subscription(self, apim: ApimRef, sid: str) -> ActualSubscription | None:
        """The subscription without its keys (APIM gives keys only through listSecrets)."""
        client = self.clients.apim(apim.subscription)
        try:
            obj, etag = cast(tuple[Any, str | None], call(f"read subscription {sid}", lambda: (
                client.subscription.get(apim.resource_group, apim.name, sid, cls=_with_etag))))
        except NotFound:
            return None
        spec = SubscriptionSpec(sid=obj.name or sid, scope=obj.scope or "",
                                display_name=obj.display_name or "", state=_s(obj.state))
        return ActualSubscription(spec=spec, etag=etag)

    def put_subscription(self, apim: ApimRef, spec: SubscriptionSpec, etag: str | None) -> None:
        from azure.mgmt.apimanagement.models import SubscriptionCreateParameters

        client = self.clients.apim(apim.subscription)
        params = SubscriptionCreateParameters(scope=spec.scope, display_name=spec.display_name,
                                              state=spec.state)
        with arm_call(f"write subscription {spec.sid}"):
            client.subscription.create_or_update(apim.resource_group, apim.name, spec.sid, params,
                                                 notify=False, if_match=etag)

    def subscription_key(self, apim: ApimRef, sid: str) -> str:
        """The primary key (POST listSecrets). The caller holds it in memory only: never log it."""
        client = self.clients.apim(apim.subscription)
        # logging_enable=False: even a client built with network tracing must not log this body.
        secrets = call(f"read the keys of subscription {sid}", lambda: client.subscription.list_secrets(
            apim.resource_group, apim.name, sid, logging_enable=False))
        key = secrets.primary_key or secrets.secondary_key
        if not key:
            raise NotFound(f"subscription {sid} has no key")
        return str(key)

    def delete_subscription(self, apim: ApimRef, sid: str, etag: str | None) -> None:
        client = self.clients.apim(apim.subscription)
        self._found(f"delete subscription {sid}", lambda: client.subscription.delete(
            apim.resource_group, apim.name, sid, if_match=etag or "*"))

    # -- role assignments ----------------------------------------------------------------------

    def list_role_assignments(self, scope: str, subscription: str,
                              principal_id: str | None = None) -> tuple[RoleAssignmentSpec, ...]:
        """Assignments made exactly at ``scope`` (not inherited): of ``principal_id``, or of every
        principal when None (a cold run finds APIM's principal in its own assignment)."""
        auth = self.clients.authorization(subscription)
        odata = f"principalId eq '{principal_id}'" if principal_id else "atScope()"
        items = call(f"list role assignments on {scope}", lambda: list(auth.role_assignments.list_for_scope(
            scope, filter=odata)))
        return tuple(sorted((role_from_sdk(o) for o in items
                             if (o.scope or "").lower() == scope.lower()), key=lambda r: r.name))

    def list_role_assignments_in_subscription(self, subscription: str,
                                              principal_id: str) -> list[RoleAssignmentSpec]:
        """Every assignment of ``principal_id`` in a subscription, at any scope (one paged read)."""
        auth = self.clients.authorization(subscription)
        items = call(f"list role assignments in subscription {subscription}", lambda: list(
            auth.role_assignments.list_for_subscription(filter=f"principalId eq '{principal_id}'")))
        return [role_from_sdk(o) for o in items]

    def create_role_assignment(self, spec: RoleAssignmentSpec, subscription: str) -> None:
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

        auth = self.clients.authorization(subscription)
        params = RoleAssignmentCreateParameters(
            role_definition_id=ROLE_DEFINITION_PREFIX.format(sub=subscription,
                                                             guid=spec.role_definition_guid),
            principal_id=spec.principal_id,
            principal_type="ServicePrincipal",
            description=spec.description,
        )
        from azure.core.exceptions import HttpResponseError

        what = f"assign role {spec.role_definition_guid} on {spec.scope}"
        try:
            auth.role_assignments.create(spec.scope, spec.name, params)
        except HttpResponseError as exc:
            if exc.status_code == 409 and getattr(exc.error, "code", "") == "RoleAssignmentExists":
                # The same (scope, role, principal) exists under another name: already satisfied.
                logger.info("%s: already assigned under another name", what)
                return
            raise translate(exc, what) from exc

    def delete_role_assignment(self, spec: RoleAssignmentSpec, subscription: str) -> None:
        auth = self.clients.authorization(subscription)
        self._found(f"delete role assignment {spec.name}",
                    lambda: auth.role_assignments.delete(spec.scope, spec.name))
