"""Microsoft.Authorization: role assignments at any scope, and the built-in roles the project uses.

Rule: ARM's uniqueness rules, exactly. A re-PUT of the same name and content succeeds; the same
(scope, role, principal) under another name is 409 RoleAssignmentExists; reusing a name for another
scope, role or principal is 400 RoleAssignmentUpdateNotPermitted.
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.wrappers import Response

from armsim.answers import ArmError, bad_request, json_response, utcnow
from armsim.context import Ctx
from armsim.routing import Route
from armsim.store import Entity

ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
DEFINITION_TYPE = "Microsoft.Authorization/roleDefinitions"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ROLE_ID = re.compile(r"/providers/Microsoft\.Authorization/roleDefinitions/([0-9a-fA-F-]{36})$",
                      re.IGNORECASE)
_EMULATED = ("microsoft.apimanagement", "microsoft.cognitiveservices")

# Built-in roles armsim knows (extend this table to allow more role definition ids).
ROLE_DEFINITIONS: dict[str, str] = {
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd": "Cognitive Services OpenAI User",
    "a001fd3d-188f-4b5d-821b-7da978bf7442": "Cognitive Services OpenAI Contributor",
    "a97b65f3-24c7-4388-baec-2e87135dc908": "Cognitive Services User",
    "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68": "Cognitive Services Contributor",
    "312a565d-c81f-4fd8-895a-4e21e48d571c": "API Management Service Contributor",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
}


# Their permissions (Actions / NotActions / DataActions), as Microsoft's built-in roles reference lists
# them (learn.microsoft.com/azure/role-based-access-control/built-in-roles, categories Privileged, General,
# AI + machine learning, Integration). The Microsoft.Support/*, Insights and health read actions the real
# roles also carry are left out: nothing here asks about them.
ROLE_PERMISSIONS: dict[str, dict[str, list[str]]] = {
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd": {  # Cognitive Services OpenAI User
        "actions": ["Microsoft.CognitiveServices/*/read", "Microsoft.Authorization/roleAssignments/read",
                    "Microsoft.Authorization/roleDefinitions/read"],
        "dataActions": ["Microsoft.CognitiveServices/accounts/OpenAI/*/read",
                        "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"]},
    "a001fd3d-188f-4b5d-821b-7da978bf7442": {  # Cognitive Services OpenAI Contributor
        "actions": ["Microsoft.CognitiveServices/*/read", "Microsoft.Authorization/roleAssignments/read",
                    "Microsoft.Authorization/roleDefinitions/read",
                    "Microsoft.CognitiveServices/accounts/deployments/write",
                    "Microsoft.CognitiveServices/accounts/deployments/delete"],
        "dataActions": ["Microsoft.CognitiveServices/accounts/OpenAI/*"]},
    "a97b65f3-24c7-4388-baec-2e87135dc908": {  # Cognitive Services User
        "actions": ["Microsoft.CognitiveServices/*/read",
                    "Microsoft.CognitiveServices/accounts/listkeys/action",
                    "Microsoft.Resources/subscriptions/read",
                    "Microsoft.Resources/subscriptions/resourceGroups/read"],
        "dataActions": ["Microsoft.CognitiveServices/*"]},
    "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68": {  # Cognitive Services Contributor
        "actions": ["Microsoft.Authorization/*/read", "Microsoft.CognitiveServices/*",
                    "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/read",
                    "Microsoft.Resources/subscriptions/resourceGroups/read"]},
    "312a565d-c81f-4fd8-895a-4e21e48d571c": {  # API Management Service Contributor
        "actions": ["Microsoft.ApiManagement/service/*", "Microsoft.Authorization/*/read",
                    "Microsoft.Resources/deployments/*",
                    "Microsoft.Resources/subscriptions/resourceGroups/read"]},
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": {  # Role Based Access Control Administrator
        "actions": ["Microsoft.Authorization/roleAssignments/write",
                    "Microsoft.Authorization/roleAssignments/delete", "*/read"]},
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": {"actions": ["*/read"]},  # Reader
    "b24988ac-6180-42a0-ab88-20f7382dd24c": {  # Contributor
        "actions": ["*"],
        "notActions": ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
                       "Microsoft.Authorization/elevateAccess/Action"]},
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": {"actions": ["*"]},  # Owner
}


def _permission(guid: str) -> dict[str, list[str]]:
    """The 2022-04-01 Permission shape of a role: all four lists, empty when the role has none."""
    role = ROLE_PERMISSIONS.get(guid, {})
    keys = ("actions", "notActions", "dataActions", "notDataActions")
    return {key: list(role.get(key, [])) for key in keys}


def _scope(raw: str) -> str:
    return "/" + raw.strip("/")


def _same(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _role_guid(role_definition_id: str) -> str:
    match = _ROLE_ID.search(role_definition_id.strip())
    if not match:
        raise bad_request(f"The role definition id '{role_definition_id}' is not valid: expected "
                          f".../providers/Microsoft.Authorization/roleDefinitions/{{guid}}.",
                          "InvalidRoleDefinitionId")
    return match.group(1).lower()


def _assignments(ctx: Ctx) -> list[Entity]:
    return ctx.state.store.of_type(ASSIGNMENT_TYPE)


def _principal_type(ctx: Ctx, principal_id: str) -> str:
    for entity in ctx.state.store.all():
        identity = entity.body.get("identity") if isinstance(entity.body, dict) else None
        known = isinstance(identity, dict) and str(identity.get("principalId", "")).lower()
        if known == principal_id.lower():
            return "ServicePrincipal"
    return "User"


def _check_scope(ctx: Ctx, scope: str) -> None:
    """Assignments on resources armsim emulates need the resource to exist."""
    parts = scope.strip("/").split("/")
    if len(parts) >= 8 and parts[4].lower() == "providers" and parts[5].lower() in _EMULATED:
        if ctx.state.store.get(scope) is None:
            raise ArmError(404, "ResourceNotFound", f"The scope '{scope}' does not exist.")


def assignment_put(ctx: Ctx, scope: str, name: str) -> Response:
    scope = _scope(scope)
    if not _GUID.match(name):
        raise bad_request(f"The role assignment ID '{name}' is not valid. "
                          "The role assignment ID must be a GUID.", "InvalidRoleAssignmentId")
    props = ctx.body().get("properties") or {}
    for required in ("roleDefinitionId", "principalId"):
        if not props.get(required):
            raise bad_request(f"The request is missing properties.{required}.",
                              "InvalidRoleAssignmentRequest")
    role = _role_guid(str(props["roleDefinitionId"]))
    if role not in ROLE_DEFINITIONS:
        raise bad_request(f"The role definition '{role}' does not exist.", "RoleDefinitionDoesNotExist")
    principal = str(props["principalId"])
    _check_scope(ctx, scope)

    same_name = next((e for e in _assignments(ctx) if e.name.lower() == name.lower()), None)
    if same_name is not None:
        old = same_name.body["properties"]
        if not (_same(old["scope"], scope) and old["principalId"].lower() == principal.lower()
                and _role_guid(old["roleDefinitionId"]) == role):
            raise bad_request("Tenant ID, application ID, principal ID, and scope are not allowed to be "
                              "updated.", "RoleAssignmentUpdateNotPermitted")
    else:
        for other in _assignments(ctx):
            p = other.body["properties"]
            if (_same(p["scope"], scope) and p["principalId"].lower() == principal.lower()
                    and _role_guid(p["roleDefinitionId"]) == role):
                detail = {"code": "RoleAssignmentExists",
                          "message": f"The ID of the existing role assignment is {other.name}."}
                raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.",
                               details=[detail])

    rid = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    now = utcnow()
    previous = same_name.body["properties"] if same_name else {}
    stored: dict[str, Any] = {
        "roleDefinitionId": props["roleDefinitionId"],
        "principalId": principal,
        "principalType": props.get("principalType") or _principal_type(ctx, principal),
        "scope": scope,
        "condition": props.get("condition"),
        "conditionVersion": props.get("conditionVersion"),
        "createdOn": previous.get("createdOn", now),
        "updatedOn": now,
        "createdBy": previous.get("createdBy", "00000000-0000-0000-0000-0000000000aa"),
        "updatedBy": "00000000-0000-0000-0000-0000000000aa",
        "delegatedManagedIdentityResourceId": None,
    }
    if props.get("description") is not None:
        stored["description"] = props["description"]
    body = {"properties": stored, "id": rid, "type": ASSIGNMENT_TYPE, "name": name}
    if same_name is not None and same_name.id != rid:
        ctx.state.store.delete(same_name.id)
    entity, created = ctx.state.store.put(rid, body)
    return json_response(entity.body, 201 if created else 200)


def assignment_get(ctx: Ctx, scope: str, name: str) -> Response:
    entity = ctx.state.store.get(ctx.path)
    if entity is None:
        raise ArmError(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")
    return json_response(entity.body)


def assignment_delete(ctx: Ctx, scope: str, name: str) -> Response:
    entity = ctx.state.store.get(ctx.path)
    if entity is None:
        return ctx.empty(204)
    ctx.state.store.delete(entity.id)
    return json_response(entity.body)


_PRINCIPAL = re.compile(r"^(?:principalId\s+eq|assignedTo\()\s*'([^']+)'\)?$", re.IGNORECASE)


def assignment_list(ctx: Ctx, scope: str = "") -> Response:
    """List at a scope: assignments at, above and below it; ``atScope()`` drops those below."""
    here = _scope(scope)
    at_scope = False
    principal: str | None = None
    expression = (ctx.arg("$filter") or "").strip()
    for clause in re.split(r"\s+and\s+", expression, flags=re.IGNORECASE) if expression else []:
        clause = clause.strip()
        if clause.lower() == "atscope()":
            at_scope = True
        elif match := _PRINCIPAL.match(clause):
            principal = match.group(1).lower()
        else:
            raise bad_request("armsim supports $filter atScope(), principalId eq '...' and "
                              f"assignedTo('...'); not {clause!r}.", "InvalidFilter")
    items = []
    for entity in _assignments(ctx):
        assigned = entity.body["properties"]["scope"].rstrip("/").lower()
        target = here.rstrip("/").lower()
        above = assigned == target or target.startswith(assigned + "/") or assigned == ""
        below = assigned.startswith(target + "/")
        if not (above or (below and not at_scope)):
            continue
        if principal and entity.body["properties"]["principalId"].lower() != principal:
            continue
        items.append(entity.body)
    return ctx.page(items)


def _definition(scope: str, guid: str) -> dict[str, Any]:
    return {"id": f"{scope.rstrip('/')}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
            "name": guid, "type": DEFINITION_TYPE,
            "properties": {"roleName": ROLE_DEFINITIONS[guid], "type": "BuiltInRole", "description": "",
                           "assignableScopes": ["/"], "permissions": [_permission(guid)]}}


def permissions_list(ctx: Ctx, scope: str) -> Response:
    """The caller's permissions at a scope: one entry per role assignment of the caller at or above
    it, carrying that role's actions (Microsoft.Authorization/permissions, what ``az`` and the portal's
    "check access" read). Conditions are not evaluated here, as in ARM's listing."""
    here = _scope(scope).rstrip("/").lower()
    caller = ctx.state.options.caller_principal_id.lower()
    items = []
    for entity in _assignments(ctx):
        props = entity.body["properties"]
        assigned = props["scope"].rstrip("/").lower()
        if props["principalId"].lower() != caller:
            continue
        if assigned in ("", here) or here.startswith(assigned + "/"):
            items.append(_permission(_role_guid(props["roleDefinitionId"])))
    return ctx.page(items)


def definition_get(ctx: Ctx, scope: str, role: str) -> Response:
    if role.lower() not in ROLE_DEFINITIONS:
        raise ArmError(404, "RoleDefinitionDoesNotExist", f"The role definition '{role}' does not exist.")
    return json_response(_definition(_scope(scope), role.lower()))


def definition_list(ctx: Ctx, scope: str = "") -> Response:
    wanted = re.match(r"^roleName\s+eq\s+'([^']*)'$", (ctx.arg("$filter") or "").strip(), re.IGNORECASE)
    items = [_definition(_scope(scope), guid) for guid, role in ROLE_DEFINITIONS.items()
             if not wanted or role.lower() == wanted.group(1).lower()]
    return ctx.page(items)


ROUTES: list[Route] = [
    Route("/<path:scope>/providers/Microsoft.Authorization/roleAssignments", get=assignment_list),
    Route("/<path:scope>/providers/Microsoft.Authorization/roleAssignments/<name>", get=assignment_get,
          put=assignment_put, delete=assignment_delete),
    Route("/<path:scope>/providers/Microsoft.Authorization/roleDefinitions", get=definition_list),
    Route("/<path:scope>/providers/Microsoft.Authorization/roleDefinitions/<role>", get=definition_get),
    Route("/<path:scope>/providers/Microsoft.Authorization/permissions", get=permissions_list),
]
