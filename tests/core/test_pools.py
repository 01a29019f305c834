"""Pools, pure: membership, priorities, weights, a different model left out, APIM's limits, the
unified policy, and the plan against what APIM holds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from importer import policyxml
from importer.identity import backend_id
from importer.model import (
    Account,
    AccountRef,
    Action,
    ActualApi,
    Deployment,
    InvalidInput,
    Mode,
    Options,
    TokenLimit,
)
from importer.pools import (
    MAX_MEMBERS,
    POOL_MARK,
    POOL_VARIABLE,
    ActualPool,
    ActualPools,
    Source,
    owns,
    plan_pools,
    pool_id,
    render_pools,
    unified_api_id,
    weights,
)


def _acct(name: str, *deps: Deployment, kind: str = "OpenAI") -> Account:
    ref = AccountRef.parse(f"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.CognitiveServices/"
                           f"accounts/{name}")
    return Account(ref, kind, f"https://{name}.openai.azure.com/", deployments=deps)


def _dep(name: str = "gpt-4o", model: str = "gpt-4o", sku: str = "Standard",
         capacity: int = 10) -> Deployment:
    return Deployment(name, model, sku=sku, capacity=capacity)


def _render(*accounts: Account, options: Options | None = None) -> object:
    opts = options or Options()
    return render_pools("ai/pool", [Source(a, opts) for a in accounts], opts)


@pytest.mark.parametrize(("caps", "expected"), [
    ([30, 10], [3, 1]), ([300, 100], [3, 1]), ([150, 100], [3, 2]), ([7], [1]), ([None, 0, 5], [1, 1, 5]),
    ([1000, 10], [100, 1]), ([450, 1], [100, 1]),
])
def test_weights_are_proportional_to_capacity_within_1_to_100(caps: list[int | None],
                                                              expected: list[int]) -> None:
    assert weights(caps) == expected


def test_provisioned_first_weights_by_capacity_and_different_model_left_out() -> None:
    ptu = _acct("acct-a", _dep(sku="GlobalProvisionedManaged", capacity=50))
    big = _acct("acct-b", _dep(capacity=300))
    small = _acct("acct-c", _dep(capacity=100))
    other = _acct("acct-d", _dep(model="gpt-4o-mini", capacity=1000))
    desired = _render(ptu, big, small, other)
    (pool,) = desired.pools
    assert pool.backend_id == pool_id(Mode.AZURE_OPENAI, "gpt-4o")
    assert [(m.backend_id, m.priority, m.weight) for m in pool.members] == [
        (backend_id(ptu.ref), 1, 1), (backend_id(big.ref), 2, 3), (backend_id(small.ref), 2, 1)]
    assert pool.model == "gpt-4o"
    (left,) = desired.left
    assert left.account == "acct-d" and "gpt-4o-mini" in left.reason and "never pooled" in left.reason
    assert owns(pool.description) and pool.description.endswith(POOL_MARK)


def test_pools_respect_apims_limit_keeping_highest_priority_and_capacity() -> None:
    accounts = [_acct(f"acct-{i:02d}", _dep(capacity=i + 1)) for i in range(MAX_MEMBERS + 2)]
    accounts.append(_acct("acct-ptu", _dep(sku="ProvisionedManaged", capacity=1)))
    desired = _render(*accounts)
    (pool,) = desired.pools
    assert len(pool.members) == MAX_MEMBERS
    assert pool.members[0].backend_id == backend_id(accounts[-1].ref)  # provisioned kept, first
    dropped = sorted(x.account for x in desired.left)
    assert dropped == ["acct-00", "acct-01", "acct-02"]  # the three smallest standard members
    assert all(f"at most {MAX_MEMBERS}" in x.reason for x in desired.left)


def test_one_unified_api_per_mode_in_use_with_the_same_allow_list_and_optional_policies() -> None:
    opts = Options(token_limit=TokenLimit(tokens_per_minute=1000))
    aoai = _acct("acct-a", _dep(), _dep("text-embedding", "text-embedding-3-small"))
    foundry = _acct("acct-f", _dep("phi-4", "Phi-4"), kind="AIServices")
    sources = [Source(aoai, opts), Source(foundry, replace(opts, modes=(Mode.AZURE_AI,)))]
    desired = render_pools("ai/pool", sources, opts)
    assert [a.api_id for a in desired.apis] == [unified_api_id(Mode.AZURE_AI),
                                                unified_api_id(Mode.AZURE_OPENAI)]
    assert [a.path for a in desired.apis] == ["ai/pool/models", "ai/pool/openai"]
    assert all(owns(a.description) for a in desired.apis)
    # The same key names as the per-account APIs: the bearer form in the OpenAI modes only.
    assert [(a.key_header, a.key_query, a.key_bearer) for a in desired.apis] == [
        ("api-key", "api-key", False), ("api-key", "api-key", True)]
    policy = {p.api_id: p.xml for p in desired.policies}[unified_api_id(Mode.AZURE_OPENAI)]
    root = policyxml.parse(policy)
    values = {el.get("name"): el.get("value") for el in root.iter("set-variable")}
    assert values["ai-allowed-deployments"] == "|gpt-4o|text-embedding|"
    assert values[POOL_VARIABLE] == (f"|gpt-4o={pool_id(Mode.AZURE_OPENAI, 'gpt-4o')}"
                                     f"|text-embedding={pool_id(Mode.AZURE_OPENAI, 'text-embedding')}|")
    assert root.find("inbound/azure-openai-token-limit") is not None
    retry = root.find("backend/retry")
    assert retry is not None and retry.get("count") == "1" and "429" in retry.get("condition")
    assert retry.find("forward-request").get("buffer-request-body") == "true"
    assert root.find("inbound/set-backend-service").get("backend-id").startswith("@")


def test_a_deployment_name_that_would_break_out_stays_data() -> None:
    with pytest.raises(InvalidInput):
        render_pools("ai/{account}", [], Options())
    weird = _acct("acct-a", Deployment('a"/><x', "gpt-4o"))
    assert _render(weird).pools == ()  # not routable: never pooled


def test_plan_creates_then_is_empty_when_apim_holds_it_and_removes_what_is_unused() -> None:
    a = _acct("acct-a", _dep())
    b = _acct("acct-b", _dep(capacity=30))
    desired = _render(a, b)
    plan = plan_pools(desired, ActualPools())
    assert [(c.action, c.kind) for c in plan.changes] == [
        (Action.CREATE, "pool"), (Action.CREATE, "api"), (Action.CREATE, "policy")]
    assert any("weight 3" in line for line in plan.changes[0].diff)
    (pool,) = desired.pools
    held = ActualPools(
        pools=(ActualPool(pool.backend_id, pool.membership(), pool.description, "e1", owned=True),),
        apis=(ActualApi(desired.apis[0], "e2", owned=True),),
        policies={desired.apis[0].api_id: (desired.policies[0], "e3")})
    assert plan_pools(desired, held).changes == ()
    # b leaves: the membership diff names it; a leaves too: the pool and the unified API go.
    shrunk = plan_pools(_render(a), held)
    assert [(c.action, c.kind) for c in shrunk.changes] == [(Action.UPDATE, "pool")]  # same retry count
    assert shrunk.changes[0].diff == (f"- member {backend_id(b.ref).lower()}: priority 2, weight 3",)
    gone = plan_pools(_render(), held)
    assert [(c.action, c.kind) for c in gone.changes] == [(Action.DELETE, "api"), (Action.DELETE, "pool")]


def test_foreign_objects_under_our_ids_are_conflicts() -> None:
    desired = _render(_acct("acct-a", _dep()))
    (pool,) = desired.pools
    foreign = ActualPools(pools=(ActualPool(pool.backend_id, (), "someone else's", "e", owned=False),),
                          apis=(ActualApi(replace(desired.apis[0], description="theirs"), "e"),))
    plan = plan_pools(desired, foreign)
    assert {(c.action, c.kind) for c in plan.changes} == {(Action.CONFLICT, "pool"), (Action.CONFLICT, "api")}
    assert plan.empty


def test_a_path_clash_stops_the_pools_plan() -> None:
    desired = _render(_acct("acct-a", _dep()))
    plan = plan_pools(desired, ActualPools(path_clashes={desired.apis[0].api_id: "someone-elses-api"}))
    assert [(c.action, c.kind) for c in plan.changes] == [(Action.CONFLICT, "api")]
    assert "someone-elses-api" in plan.changes[0].reason and plan.empty
