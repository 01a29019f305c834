"""Events on the importer's own objects, decided without I/O (importer.events): which key to look
up, which callers are the importer itself, and what a found owner must satisfy."""

from __future__ import annotations

from typing import Any

import pytest

from importer.events import (
    OID_CLAIM,
    caller_ids,
    decide_cloudevent,
    decide_eventgrid,
    owned_by_index,
    owned_keys,
)
from importer.model import AccountRef, ApimRef, Scope

SUB = "00000000-0000-0000-0000-000000000001"
APIM = ApimRef.parse(f"/subscriptions/{SUB}/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/"
                     "service/contoso-apim")
ACCOUNT = (f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.CognitiveServices/accounts/"
           "contoso-aoai")
SCOPES = (Scope.parse(f"/subscriptions/{SUB}"),)
ME, SOMEONE = "00000000-0000-0000-0000-00000000a001", "00000000-0000-0000-0000-0000000000b0"


def event(resource: str, operation: str, *, oid: str | None = SOMEONE, evidence: str | None = SOMEONE,
          kind: str = "Microsoft.Resources.ResourceWriteSuccess") -> dict[str, Any]:
    data: dict[str, Any] = {"operationName": operation, "status": "Succeeded", "resourceUri": resource,
                            "claims": {} if oid is None else {OID_CLAIM: oid},
                            "authorization": {"evidence": {} if evidence is None
                                              else {"principalId": evidence}}}
    return {"id": "e1", "eventType": kind, "subject": resource, "data": data}


def decide(ev: dict[str, Any]) -> Any:
    return decide_eventgrid(ev, SCOPES, own_ids=frozenset({ME}), apim=APIM)


@pytest.mark.parametrize(("suffix", "operation", "key"), [
    ("/apis/ai-contoso-aoai-1234abcd", "apis/write", "api:ai-contoso-aoai-1234abcd"),
    ("/apis/AI-Contoso-AOAI-1234abcd;rev=2", "apis/write", "api:ai-contoso-aoai-1234abcd"),
    ("/apis/ai-contoso-aoai-1234abcd/policies/policy", "apis/policies/delete",
     "api:ai-contoso-aoai-1234abcd"),
    ("/backends/ai-contoso-aoai-1234abcd-embeddings", "backends/delete",
     "backend:ai-contoso-aoai-1234abcd-embeddings"),
    ("/products/ai-consumers/apis/ai-contoso-aoai-1234abcd", "products/apis/delete",
     "link:ai-consumers:ai-contoso-aoai-1234abcd"),
    ("/subscriptions/ai-contoso-aoai-1234abcd-probe", "subscriptions/write",
     "subscription:ai-contoso-aoai-1234abcd-probe"),
])
def test_apim_objects_become_a_key_to_look_up(suffix: str, operation: str, key: str) -> None:
    d = decide(event(APIM.id.lower() + suffix, f"Microsoft.ApiManagement/service/{operation}"))
    assert d.needs_owner and not d.accepted and d.key == key


def test_a_role_assignment_at_a_watched_account_carries_its_scope() -> None:
    rid = f"{ACCOUNT}/providers/Microsoft.Authorization/roleAssignments/6F1D2C3B-0000-4000-8000-000000000001"
    d = decide(event(rid, "Microsoft.Authorization/roleAssignments/delete",
                     kind="Microsoft.Resources.ResourceDeleteSuccess"))
    assert d.key == "role:6f1d2c3b-0000-4000-8000-000000000001"
    assert d.scope_account == AccountRef.parse(ACCOUNT)
    ours = owned_by_index(d, ACCOUNT.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"), SCOPES)
    assert ours.accepted and "changed by hand" in ours.reason
    other = ACCOUNT.replace("contoso-aoai", "contoso-foundry")
    assert "another account" in owned_by_index(d, other, SCOPES).reason
    assert "not an object the importer owns" in owned_by_index(d, None, SCOPES).reason


@pytest.mark.parametrize(("oid", "evidence"), [(ME, None), (None, ME), (ME.upper(), ME)])
def test_the_importers_own_writes_are_dropped_by_either_field(oid: str | None, evidence: str | None) -> None:
    d = decide(event(APIM.id + "/backends/ai-x-1234abcd", "Microsoft.ApiManagement/service/backends/write",
                     oid=oid, evidence=evidence))
    assert not d.accepted and not d.needs_owner and "importer's own identity" in d.reason
    assert ME in caller_ids(event("x", "y", oid=oid, evidence=evidence)["data"])


def test_own_writes_are_dropped_in_cloudevents_too() -> None:
    ev = event(ACCOUNT + "/deployments/gpt-4o", "Microsoft.CognitiveServices/accounts/deployments/write",
               oid=ME, evidence=ME)
    cloud = {"specversion": "1.0", "id": "e1", "type": ev["eventType"], "subject": ev["subject"],
             "source": f"/subscriptions/{SUB}", "data": ev["data"]}
    assert "own identity" in decide_cloudevent(cloud, SCOPES, own_ids=frozenset({ME}), apim=APIM).reason
    assert decide_cloudevent(cloud, SCOPES, apim=APIM).accepted  # unknown own id: nothing is dropped


@pytest.mark.parametrize(("resource", "operation", "reason"), [
    ("/subscriptions/{sub}/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/other-apim/apis/a",
     "Microsoft.ApiManagement/service/apis/write", "not in the importer's APIM instance"),
    ("{apim}/apis", "Microsoft.ApiManagement/service/apis/write", "does not name a api"),
    ("/subscriptions/{sub}/resourceGroups/rg-ai/providers/Microsoft.Authorization/roleAssignments/x",
     "Microsoft.Authorization/roleAssignments/write", "not at an AI account"),
    ("/subscriptions/99999999-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
     "Microsoft.CognitiveServices/accounts/acct/providers/Microsoft.Authorization/roleAssignments/x",
     "Microsoft.Authorization/roleAssignments/write", "outside the watched scopes"),
    ("{apim}/namedValues/x", "Microsoft.ApiManagement/service/namedValues/write", "is not an AI account"),
])
def test_other_objects_are_dropped_with_a_reason(resource: str, operation: str, reason: str) -> None:
    d = decide(event(resource.format(sub=SUB, apim=APIM.id), operation))
    assert not d.accepted and not d.needs_owner and reason in d.reason


def test_owned_keys_name_every_object_of_the_desired_state() -> None:
    from importer.model import (
        ApiSpec,
        BackendSpec,
        Desired,
        PolicySpec,
        ProductLinkSpec,
        RoleAssignmentSpec,
    )

    ref = AccountRef.parse(ACCOUNT)
    # Two modes: both APIs (and each one's links) are named.
    desired = Desired(ref, (ApiSpec("ai-a-1", "A", "d", "a"), ApiSpec("ai-a-1-v1", "A", "d", "a/v1")),
                      (BackendSpec("ai-a-1", "https://x", "d"), BackendSpec("ai-a-1-v1", "https://x", "d"),
                       BackendSpec("ai-a-1-safety", "https://y", "d")),
                      (PolicySpec("ai-a-1", "<policies/>"), PolicySpec("ai-a-1-v1", "<policies/>")),
                      (ProductLinkSpec("P1", "ai-a-1"), ProductLinkSpec("P1", "ai-a-1-v1")),
                      (RoleAssignmentSpec("R-1", ACCOUNT, "g", "p"),))
    assert owned_keys(desired, "ai-a-1-probe") == (
        "api:ai-a-1", "api:ai-a-1-v1", "backend:ai-a-1", "backend:ai-a-1-safety", "backend:ai-a-1-v1",
        "link:p1:ai-a-1", "link:p1:ai-a-1-v1", "role:r-1", "subscription:ai-a-1-probe")
