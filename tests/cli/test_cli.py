"""The CLI contract: commands, options, exit codes and JSON keys that tooling outside the repo uses."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from importer.cli import main
from tests.fixtures.world import AOAI, SUB, World

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _common(world: World) -> list[str]:
    return ["--apim", world.apim, "--arm-endpoint", world.sim.url]


def test_plan_apply_plan_exit_codes_and_json(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "plan", "--account", AOAI, *_common(world))
    assert code == 2
    assert "+ api" in out and "Plan: 4 to create, 0 to update, 0 to delete." in out
    assert world.writes() == 0

    code, out = _run(capsys, "apply", "--account", AOAI, *_common(world), "--json")
    assert code == 0
    body = json.loads(out)
    assert body["writes"] == world.writes() == 4
    assert {(c["action"], c["kind"]) for c in body["changes"]} == {
        ("create", "api"), ("create", "backend"), ("create", "policy"), ("create", "role_assignment")}
    assert all({"action", "kind", "id", "reason", "diff"} <= set(c) for c in body["changes"])

    code, out = _run(capsys, "plan", "--account", AOAI, *_common(world))
    assert code == 0 and "No changes" in out
    code, out = _run(capsys, "apply", "--account", AOAI, *_common(world), "--json")
    assert code == 0 and json.loads(out)["writes"] == 0


def test_plan_with_mode_option(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "plan", "--account", AOAI, *_common(world), "--mode", "azure-openai-v1",
                     "--json")
    assert code == 2
    api = next(c for c in json.loads(out)["changes"] if c["kind"] == "api")
    assert any("openai/v1" in line for line in api["diff"])


def test_plan_and_apply_with_the_official_document_by_link(world: World, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {
        "/deployments/{deployment-id}/chat/completions": {"post": {"parameters": [
            {"name": "deployment-id", "in": "path", "required": True},
            {"$ref": "#/components/parameters/v"}], "responses": {"200": {"description": "OK"}}}}},
        "components": {"parameters": {"v": {"name": "api-version", "in": "query", "required": True}}}}
    link = world.sim.add_file("cli/AIFoundryOpenAI.json", json.dumps(doc))
    monkeypatch.setenv("IMPORTER_OPENAPI_BASE_URL", link.rsplit("/", 1)[0] + "/")
    code, out = _run(capsys, "plan", "--account", AOAI, *_common(world), "--openapi", "official", "--json")
    assert code == 2
    api = next(c for c in json.loads(out)["changes"] if c["kind"] == "api")
    assert f"document: {link}" in api["diff"] and "operations: 1" in api["diff"]
    code, out = _run(capsys, "apply", "--account", AOAI, *_common(world), "--openapi", "official", "--json")
    assert code == 0 and json.loads(out)["writes"] == 4
    code, out = _run(capsys, "plan", "--account", AOAI, *_common(world), "--openapi", "official")
    assert code == 0 and "No changes" in out
    code, out = _run(capsys, "plan", "--account", AOAI, *_common(world))  # bundled: the API changes
    assert code == 2


def test_errors_exit_1_with_a_clear_message(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "plan", "--account", "/subscriptions/x/../y", *_common(world), "--json")
    assert code == 1 and "error" in json.loads(out)
    code, out = _run(capsys, "plan", "--account", AOAI, "--arm-endpoint", world.sim.url)
    assert code == 1 and "IMPORTER_APIM_ID" in out
    code, out = _run(capsys, "apply", "--account", AOAI, *_common(world), "--mode", "azure-ai")
    assert code == 1 and "azure-ai" in out
    assert world.writes() == 0


def test_reconcile_fleet_json(world: World, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = _run(capsys, "reconcile", *_common(world), "--scopes", f"/subscriptions/{SUB}",
                     "--dry-run", "--json")
    assert code == 2 and json.loads(out)["summary"]["planned"] == 2
    code, out = _run(capsys, "reconcile", *_common(world), "--scopes", f"/subscriptions/{SUB}", "--json")
    assert code == 0 and json.loads(out)["summary"]["applied"] == 2
    code, out = _run(capsys, "reconcile", *_common(world), "--scopes", f"/subscriptions/{SUB}")
    assert code == 0 and "noop 2" in out


def test_explain_walks_to_the_first_failing_check(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "explain", "--account", AOAI, "--deployment", "gpt-4o", *_common(world))
    assert code == 2 and "no API" in out
    _run(capsys, "apply", "--account", AOAI, *_common(world))
    code, out = _run(capsys, "explain", "--account", AOAI, "--deployment", "gpt-4o", *_common(world),
                     "--json")
    body = json.loads(out)
    assert code == 0 and body["onGateway"] is True and "contoso-aoai/openai" in body["verdict"]
    code, out = _run(capsys, "explain", "--account", AOAI, "--deployment", "nope", *_common(world))
    assert code == 2 and "no deployment 'nope'" in out
    world.clients.cognitive(SUB).deployments.begin_delete("rg-ai", "contoso-aoai", "gpt-4o").result()
    code, out = _run(capsys, "explain", "--account", AOAI, "--deployment", "gpt-4o", *_common(world))
    assert code == 2 and "no deployment 'gpt-4o'" in out
    before = world.writes()
    _run(capsys, "explain", "--account", AOAI, *_common(world))
    assert world.writes() == before


@pytest.mark.parametrize("command", [[], ["plan"], ["apply"], ["reconcile"], ["explain"], ["test"],
                                     ["sandbox"], ["demo"]])
def test_help_works_for_every_command(command: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "importer", *command, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: python -m importer" in proc.stdout


def test_sandbox_command_serves_the_stand_in() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "importer", "sandbox", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        deadline = time.time() + 10
        while True:
            try:
                accounts = (f"{url}/subscriptions/{SUB}/providers/Microsoft.CognitiveServices/accounts"
                            "?api-version=2025-09-01")
                with urllib.request.urlopen(accounts) as r:
                    assert json.loads(r.read())["value"] == []
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)


def test_sandbox_with_a_gateway_serves_apply_then_test(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's offline walk-through: a seeded sandbox with its gateway, apply, then test."""
    argv = [sys.executable, "-m", "importer", "sandbox", "--port", "0", "--seed", "--gateway"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(6)]
        assert lines[1].startswith("armsim gateway on http://127.0.0.1:")
        url = lines[0].rsplit(" ", 1)[-1]
        apim = next(line for line in lines if line.startswith("APIM: ")).split(" ", 1)[1]
        common = ["--apim", apim, "--arm-endpoint", url]
        assert main(["apply", "--account", AOAI, *common, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["probe"]["ok"] is True
        code, out = _run(capsys, "test", "--account", AOAI, *common, "--json")
        body = json.loads(out)
        assert code == 0 and [r["status"] for r in body["results"]] == [200, 200]
        assert body["gateway"].startswith("http://127.0.0.1:")
    finally:
        proc.terminate()
        proc.wait(10)
