"""Testing imported APIs through the gateway: ``python -m importer test`` in every mode, the routing
probe after an apply (recorded, shown by explain, never failing the run), the probe key's
subscription (owned, offboarded) and the key staying secret. Against the stand-in's gateway."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import pytest

from devhost import seed
from importer.cli import main
from importer.explain import explain
from importer.identity import api_id, probe_subscription_id
from importer.model import AccountRef, ImporterError
from importer.prober import gateway_test
from importer.reconcile import Reconciler
from importer.state.memory import MemoryRunHistory
from tests.fixtures.world import AOAI, FOUNDRY, SUB, World

RG, SVC = seed.APIM_GROUP, seed.APIM_NAME


def _common(world: World) -> list[str]:
    return ["--apim", world.apim, "--arm-endpoint", world.sim.url]


def _test(capsys: pytest.CaptureFixture[str], world: World, account: str, *extra: str) -> tuple[int, Any]:
    code = main(["test", "--account", account, *_common(world), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _gateway_requests(world: World) -> int:
    assert world.sim.gateway is not None
    return len(world.sim.gateway.log)


def _reconciler(world: World, **env: str) -> Reconciler:
    rec = world.reconciler(**env)
    rec.history = MemoryRunHistory()
    return rec


# -- python -m importer test -------------------------------------------------------------------------


@pytest.mark.parametrize("account, mode, expected", [
    (AOAI, "azure-openai", {"gpt-4o": "chat completions", "text-embedding-3-small": "embeddings"}),
    (AOAI, "azure-openai-v1", {"gpt-4o": "chat completions", "text-embedding-3-small": "embeddings"}),
    (FOUNDRY, "azure-ai", {"gpt-4o-mini": "chat completions", "Phi-4": "chat completions"}),
])
def test_every_routable_deployment_answers_through_the_gateway_in_each_mode(
        gateway_world: World, capsys: pytest.CaptureFixture[str], account: str, mode: str,
        expected: dict[str, str]) -> None:
    assert main(["apply", "--account", account, *_common(gateway_world), "--mode", mode]) == 0
    capsys.readouterr()
    code, body = _test(capsys, gateway_world, account)
    assert code == 0 and body["ok"] is True and body["mode"] == mode
    assert body["apiPath"].endswith({"azure-openai": "/openai", "azure-openai-v1": "/openai/v1",
                                     "azure-ai": "/models"}[mode])
    assert {r["deployment"]: r["operation"] for r in body["results"]} == expected
    for r in body["results"]:
        assert r["status"] == 200 and r["source"] == "model"
        assert r["usage"]["total"] >= r["usage"]["prompt"] >= 1
    assert body["key"].endswith(probe_subscription_id(AccountRef.parse(account)))


@pytest.mark.parametrize("account, mode", [(AOAI, "azure-openai"), (AOAI, "azure-openai-v1"),
                                           (FOUNDRY, "azure-ai")])
def test_streamed_calls_in_each_mode_count_their_tokens(
        gateway_world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        account: str, mode: str) -> None:
    monkeypatch.setenv("IMPORTER_TOKENS_PER_MINUTE", "10000")
    assert main(["apply", "--account", account, *_common(gateway_world), "--mode", mode]) == 0
    capsys.readouterr()
    code, body = _test(capsys, gateway_world, account, "--stream")
    assert code == 0 and body["ok"] is True
    for r in body["results"]:
        if r["operation"] == "embeddings":
            assert r["stream"] is None and r["status"] == 200
            continue
        assert r["stream"]["done"] is True and r["stream"]["events"] >= 2
        assert r["usage"]["total"] >= 2
        assert r["headers"]["x-tokens-consumed"] == str(r["usage"]["total"])
    streamed = [r for r in body["results"] if r["stream"]]
    assert streamed


def test_human_output_of_a_streamed_call(gateway_world: World, capsys: pytest.CaptureFixture[str]) -> None:
    main(["apply", "--account", AOAI, *_common(gateway_world)])
    capsys.readouterr()
    code = main(["test", "--account", AOAI, *_common(gateway_world), "--deployment", "gpt-4o", "--stream"])
    out = capsys.readouterr().out
    assert code == 0 and "✔ gpt-4o (chat completions, streamed: 4 events): 200 in" in out
    assert "tokens: prompt" in out


def test_human_output_shows_status_latency_usage_and_token_headers(
        gateway_world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPORTER_TOKENS_PER_MINUTE", "10000")
    main(["apply", "--account", AOAI, *_common(gateway_world)])
    capsys.readouterr()
    code = main(["test", "--account", AOAI, *_common(gateway_world), "--deployment", "gpt-4o"])
    out = capsys.readouterr().out
    assert code == 0
    assert "✔ gpt-4o (chat completions): 200 in" in out and "tokens: prompt" in out
    assert "x-ratelimit-remaining-tokens: " in out and "x-tokens-consumed: " in out
    assert "OK: 1/1 deployment(s)" in out


def test_a_wrong_key_is_the_gateways_401(gateway_world: World, capsys: pytest.CaptureFixture[str]) -> None:
    main(["apply", "--account", AOAI, *_common(gateway_world)])
    capsys.readouterr()
    code, body = _test(capsys, gateway_world, AOAI, "--deployment", "gpt-4o", "--key", "not-a-key")
    assert code == 1 and body["ok"] is False and body["key"] == "given (--key)"
    (r,) = body["results"]
    assert (r["status"], r["source"]) == (401, "gateway")
    assert "refused the subscription key" in r["reason"] and "not-a-key" not in json.dumps(body)


def test_a_key_read_from_stdin(gateway_world: World, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    main(["apply", "--account", AOAI, *_common(gateway_world)])
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("still-wrong\n"))
    code, body = _test(capsys, gateway_world, AOAI, "--deployment", "gpt-4o", "--key", "-")
    assert code == 1 and body["results"][0]["status"] == 401


def test_an_unknown_deployment_gets_the_allow_lists_404(gateway_world: World,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    main(["apply", "--account", AOAI, *_common(gateway_world)])
    capsys.readouterr()
    code, body = _test(capsys, gateway_world, AOAI, "--deployment", "nope")
    assert code == 1 and body["notes"] == ["the account has no deployment 'nope'"]
    (r,) = body["results"]
    assert (r["status"], r["source"], r["usage"]) == (404, "allow-list", None)


def test_a_removed_deployment_stops_being_routable_after_the_next_reconcile(
        gateway_world: World, capsys: pytest.CaptureFixture[str], aoai: AccountRef) -> None:
    main(["apply", "--account", AOAI, *_common(gateway_world)])
    gateway_world.clients.cognitive(SUB).deployments.begin_delete(seed.AI_GROUP, "contoso-aoai",
                                                                   "gpt-4o").result()
    capsys.readouterr()
    code, body = _test(capsys, gateway_world, AOAI, "--deployment", "gpt-4o")
    (r,) = body["results"]
    # Still on the allow-list: the gateway routes it and the account answers that it is gone.
    assert code == 1 and (r["status"], r["source"]) == (404, "model") and "run apply" in r["reason"]

    assert _reconciler(gateway_world).reconcile(aoai).outcome == "applied"
    code, body = _test(capsys, gateway_world, AOAI, "--deployment", "gpt-4o")
    assert code == 1 and (body["results"][0]["status"], body["results"][0]["source"]) == (404, "allow-list")
    code, body = _test(capsys, gateway_world, AOAI)
    assert code == 0 and [r["deployment"] for r in body["results"]] == ["text-embedding-3-small"]


def test_test_needs_an_imported_api_and_a_local_gateway(world: World, gateway_world: World,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, body = _test(capsys, gateway_world, AOAI)
    assert code == 1 and "run python -m importer apply first" in body["error"]
    # A stand-in without its gateway: the importer never calls the public-looking gatewayUrl.
    main(["apply", "--account", AOAI, *_common(world)])
    capsys.readouterr()
    code, body = _test(capsys, world, AOAI)
    assert code == 1 and "--gateway" in body["error"]


# -- the probe after an apply ---------------------------------------------------------------------


def test_the_routing_probe_runs_after_an_apply_is_recorded_and_explained(
        gateway_world: World, aoai: AccountRef) -> None:
    rec = _reconciler(gateway_world)
    run = rec.reconcile(aoai)
    assert run.outcome == "applied" and run.ok
    probe = run.probe
    assert probe is not None and probe["ok"] is True and probe["kind"] == "routing"
    assert probe["status"] == 404 and "routing ok" in probe["summary"]
    assert set(probe) == {"ok", "kind", "status", "latency_ms", "summary", "checked_at"}
    assert run.to_json()["probe"] == probe
    assert rec.history.last_for(aoai.id).probe == probe
    sent = gateway_world.sim.gateway.log.entries  # type: ignore[union-attr]
    assert len(sent) == 1 and "apim-importer-routing-probe" in sent[0].path  # no tokens: never a model call

    ex = explain(rec, aoai, "gpt-4o", rec.history)
    finding = next(f for f in ex.findings if f.check == "last probe")
    assert finding.ok is True and "routing ok" in finding.detail

    # A no-op run probes nothing; a policy change (a deployment removed) probes again.
    before = _gateway_requests(gateway_world)
    again = rec.reconcile(aoai)
    assert again.outcome == "noop" and again.probe is None and _gateway_requests(gateway_world) == before
    gateway_world.clients.cognitive(SUB).deployments.begin_delete(seed.AI_GROUP, "contoso-aoai",
                                                                   "gpt-4o").result()
    changed = rec.reconcile(aoai)
    assert [c.kind for c in changed.applied] == ["policy"] and changed.probe is not None
    assert changed.probe["ok"] is True and _gateway_requests(gateway_world) == before + 1


def test_importer_probe_off_disables_it(gateway_world: World, aoai: AccountRef) -> None:
    rec = _reconciler(gateway_world, IMPORTER_PROBE="off")
    assert rec.prober is None
    run = rec.reconcile(aoai)
    assert run.outcome == "applied" and run.probe is None and _gateway_requests(gateway_world) == 0
    sid = probe_subscription_id(aoai)
    assert gateway_world.sim.resource(f"{gateway_world.apim}/subscriptions/{sid}") is None


def test_a_bad_importer_probe_value_is_refused(gateway_world: World) -> None:
    from importer.model import InvalidInput

    with pytest.raises(InvalidInput, match="IMPORTER_PROBE"):
        gateway_world.reconciler(IMPORTER_PROBE="sometimes")


def test_a_failing_probe_is_recorded_not_ok_and_never_fails_the_run(
        gateway_world: World, aoai: AccountRef, caplog: pytest.LogCaptureFixture) -> None:
    gateway_world.sim.faults.error(500, times=1, path=r"^/contoso-apim/contoso-aoai/")
    rec = _reconciler(gateway_world)
    with caplog.at_level(logging.WARNING, logger="importer.reconcile"):
        run = rec.reconcile(aoai)
    assert run.outcome == "applied" and run.ok and run.error is None and run.writes == 4
    assert run.probe is not None and run.probe["ok"] is False and run.probe["status"] == 500
    assert "got 500 from the gateway" in run.probe["summary"]
    assert rec.history.last_for(aoai.id).probe == run.probe
    assert any(r.levelname == "WARNING" and "routing probe failed" in r.getMessage() for r in caplog.records)
    ex = explain(rec, aoai, None, rec.history)
    assert next(f for f in ex.findings if f.check == "last probe").ok is False
    # The apply stands: nothing rolled back, the next run plans nothing.
    assert rec.reconcile(aoai, dry_run=True).outcome == "noop"


def test_a_probe_that_cannot_run_is_recorded_too(gateway_world: World, aoai: AccountRef) -> None:
    gateway_world.sim.faults.error(503, times=10, path=r"/subscriptions/.*/listSecrets")
    run = _reconciler(gateway_world).reconcile(aoai)
    assert run.outcome == "applied" and run.ok
    assert run.probe is not None and run.probe["ok"] is False
    assert run.probe["summary"].startswith("probe failed to run:")


def test_the_call_probe_sends_one_tiny_request_per_deployment(gateway_world: World,
                                                              foundry: AccountRef) -> None:
    run = _reconciler(gateway_world, IMPORTER_PROBE="call", IMPORTER_MODE="azure-ai").reconcile(foundry)
    probe = run.probe
    assert probe is not None and probe["ok"] is True and probe["kind"] == "call"
    assert [(c["deployment"], c["status"]) for c in probe["calls"]] == [("Phi-4", 200), ("gpt-4o-mini", 200)]
    assert all(c["total_tokens"] > 0 for c in probe["calls"]) and "calls 2/2 ok" in probe["summary"]


def test_without_a_gateway_the_probe_is_skipped_with_a_note(world: World, aoai: AccountRef) -> None:
    run = world.reconciler().reconcile(aoai)
    assert run.outcome == "applied" and run.probe is None
    assert any(n.startswith("probe skipped:") and "--gateway" in n for n in run.notes)
    assert world.sim.log.count(path="/subscriptions/[^/]+/resourceGroups/rg-apim/.*/subscriptions/") == 0


# -- the key's subscription ------------------------------------------------------------------------


def test_the_probe_key_is_an_owned_subscription_scoped_to_the_api_and_offboarded(
        gateway_world: World, aoai: AccountRef) -> None:
    rec = _reconciler(gateway_world)
    rec.reconcile(aoai)
    sid = probe_subscription_id(aoai)
    stored = gateway_world.sim.resource(f"{gateway_world.apim}/subscriptions/{sid}")
    assert stored is not None
    props = stored["properties"]
    assert props["scope"].endswith(f"/apis/{api_id(aoai)}") and props["state"] == "active"
    assert props["displayName"].startswith("managed-by=apim-ai-importer") and len(props["displayName"]) <= 100
    # Re-used, not re-made, on the next probe.
    writes = gateway_world.sim.log.count(method="PUT", path=f"/subscriptions/{sid}$")
    gateway_world.clients.cognitive(SUB).deployments.begin_delete(seed.AI_GROUP, "contoso-aoai",
                                                                   "gpt-4o").result()
    rec.reconcile(aoai)
    assert gateway_world.sim.log.count(method="PUT", path=f"/subscriptions/{sid}$") == writes == 1

    gateway_world.clients.cognitive(SUB).accounts.begin_delete(seed.AI_GROUP, "contoso-aoai").result()
    plan = rec.reconcile(aoai, dry_run=True).plan
    assert plan is not None
    assert [(c.action.value, c.kind) for c in plan.changes] == [
        ("delete", "subscription"), ("delete", "api"), ("delete", "backend")]
    run = rec.reconcile(aoai)
    assert run.outcome == "offboarded" and run.probe is None
    assert gateway_world.sim.resource(f"{gateway_world.apim}/subscriptions/{sid}") is None
    assert rec.reconcile(aoai, dry_run=True).outcome == "noop"


def test_a_foreign_subscription_with_our_id_is_refused_and_left_alone(
        gateway_world: World, aoai: AccountRef, capsys: pytest.CaptureFixture[str]) -> None:
    from azure.mgmt.apimanagement import models

    rec = _reconciler(gateway_world, IMPORTER_PROBE="off")
    rec.reconcile(aoai)
    sid = probe_subscription_id(aoai)
    params = models.SubscriptionCreateParameters(scope=f"/apis/{api_id(aoai)}", display_name="someone else's",
                                                 state="active")
    gateway_world.apim_client().subscription.create_or_update(RG, SVC, sid, params)
    code, body = _test(capsys, gateway_world, AOAI)
    assert code == 1 and "without the importer's mark" in body["error"]
    gateway_world.clients.cognitive(SUB).accounts.begin_delete(seed.AI_GROUP, "contoso-aoai").result()
    assert rec.reconcile(aoai).outcome == "offboarded"
    assert gateway_world.sim.resource(f"{gateway_world.apim}/subscriptions/{sid}") is not None


def test_a_suspended_probe_subscription_is_reactivated(gateway_world: World, aoai: AccountRef) -> None:
    rec = _reconciler(gateway_world)
    rec.reconcile(aoai)
    sid = probe_subscription_id(aoai)
    client = gateway_world.apim_client()
    from azure.mgmt.apimanagement import models

    client.subscription.update(RG, SVC, sid, "*", models.SubscriptionUpdateParameters(state="suspended"))
    gateway_world.clients.cognitive(SUB).deployments.begin_delete(seed.AI_GROUP, "contoso-aoai",
                                                                   "gpt-4o").result()
    run = rec.reconcile(aoai)
    assert run.probe is not None and run.probe["ok"] is True
    assert client.subscription.get(RG, SVC, sid).state == "active"


# -- the key stays secret ------------------------------------------------------------------------------


def test_the_key_never_appears_in_logs_history_output_or_errors(
        gateway_world: World, aoai: AccountRef, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="azure")
    rec = _reconciler(gateway_world, IMPORTER_PROBE="call", IMPORTER_TOKENS_PER_MINUTE="10000")
    seen: list[str] = []
    run = rec.reconcile(aoai)  # makes the subscription and reads its key
    seen.append(json.dumps(run.to_json()))
    # A probe that breaks (the connection is cut) and one that fails (500): both end up in the record.
    gateway_world.sim.faults.script("POST", r"^/contoso-apim/", ["reset", 500])
    gateway_world.clients.cognitive(SUB).deployments.begin_delete(seed.AI_GROUP, "contoso-aoai",
                                                                   "gpt-4o").result()
    seen.append(json.dumps(rec.reconcile(aoai).to_json()))
    for argv in (["--json"], ["-v"], ["--json", "--deployment", "nope"]):
        main(["test", "--account", AOAI, *_common(gateway_world), "-v", *argv])
    out = capsys.readouterr()
    seen += [out.out, out.err]
    seen += [json.dumps(dataclasses.asdict(r)) for r in rec.history.list(aoai.id)]
    gateway_world.sim.faults.error(503, times=10, path=r"/contoso-apim/subscriptions/")
    assert rec.prober is not None
    with pytest.raises(ImporterError) as raised:
        gateway_test(rec.prober, rec.settings, aoai)
    seen.append(repr(raised.value) + repr(raised.value.__cause__))
    gateway_world.sim.faults.clear()

    sid = probe_subscription_id(aoai)
    key = gateway_world.apim_client().subscription.list_secrets(RG, SVC, sid).primary_key
    assert key and len(key) >= 16
    assert caplog.records and any(r.name.startswith("azure") for r in caplog.records)
    for text in [caplog.text, *seen, json.dumps(gateway_world.sim.log.as_dicts()),
                 json.dumps(gateway_world.sim.gateway.log.as_dicts())]:  # type: ignore[union-attr]
        assert key not in text
