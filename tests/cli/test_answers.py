"""What the CLI says when something is missing or broken: which thing, by name, once, unwrapped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from devhost import seed
from importer.cli import main
from tests.fixtures.world import AOAI, SUB, World

ROOT = Path(__file__).resolve().parents[2]
GHOST = seed.account_id(SUB, seed.AI_GROUP, "ghost")
NO_GROUP = seed.account_id(SUB, "rg-gone", "ghost")


def _common(world: World) -> list[str]:
    return ["--apim", world.apim, "--arm-endpoint", world.sim.url]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _cli(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a process whose stdout and stderr are pipes, not a terminal."""
    full = {k: v for k, v in os.environ.items()
            if not k.startswith("IMPORTER_") and k != "AzureWebJobsStorage"} | env
    return subprocess.run([sys.executable, "-m", "importer", *argv], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_missing_account_exits_1_and_says_so(world: World, capsys: pytest.CaptureFixture[str],
                                                command: str) -> None:
    code, out = _run(capsys, command, "--account", GHOST, *_common(world))
    assert code == 1
    assert out.strip() == f"Error: account ghost not found in resource group rg-ai (subscription {SUB})"
    code, out = _run(capsys, command, "--account", NO_GROUP, *_common(world), "--json")
    assert code == 1
    assert json.loads(out) == {"error": f"resource group rg-gone not found in subscription {SUB}, "
                                        "so account ghost does not exist"}
    assert world.writes() == 0


def test_a_missing_apim_service_is_named(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    gone = world.apim.replace("/service/contoso-apim", "/service/apim-typo")
    code, out = _run(capsys, "plan", "--account", AOAI, "--apim", gone, "--arm-endpoint", world.sim.url)
    assert code == 1 and "APIM service apim-typo: not found in resource group rg-apim" in out
    other_group = gone.replace("/resourceGroups/rg-apim/", "/resourceGroups/rg-nope/")
    code, out = _run(capsys, "plan", "--account", AOAI, "--apim", other_group,
                     "--arm-endpoint", world.sim.url)
    assert code == 1 and "APIM service apim-typo: resource group rg-nope not found" in out


def test_reconcile_on_a_missing_scope_names_it(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    scope = f"/subscriptions/{SUB}/resourceGroups/rg-gone"
    code, out = _run(capsys, "reconcile", *_common(world), "--scopes", scope, "--json")
    assert code == 1
    assert json.loads(out)["error"] == (f"scope {scope}: resource group rg-gone not found in subscription "
                                        f"{SUB}; check IMPORTER_SCOPES or --scopes")
    assert world.writes() == 0


def test_an_account_gone_with_objects_left_plans_their_removal(world: World,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "apply", "--account", AOAI, *_common(world))[0] == 0
    world.clients.cognitive(SUB).accounts.begin_delete("rg-ai", "contoso-aoai").result()
    code, out = _run(capsys, "plan", "--account", AOAI, *_common(world))
    assert code == 2 and "- api" in out and "note: account contoso-aoai not found" in out
    assert _run(capsys, "apply", "--account", AOAI, *_common(world))[0] == 0
    code, out = _run(capsys, "plan", "--account", AOAI, *_common(world))
    assert code == 1 and "Error: account contoso-aoai not found" in out


def test_each_error_is_printed_once_and_nothing_promises_a_retry(world: World) -> None:
    proc = _cli("plan", "--account", GHOST, *_common(world))
    assert proc.returncode == 1
    assert proc.stdout.count("not found") == 1 and proc.stderr == ""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _cli("plan", "--account", AOAI, "--apim", world.apim, "--arm-endpoint", f"http://127.0.0.1:{port}")
    assert proc.returncode == 1 and proc.stderr == ""
    assert proc.stdout.count("Error") == 1
    assert f"could not reach http://127.0.0.1:{port} (Connection refused)" in proc.stdout
    assert "retry" not in proc.stdout


def test_output_to_a_pipe_is_never_wrapped(world: World) -> None:
    proc = _cli("plan", "--account", AOAI, *_common(world))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    # The allow-list expression is one long line; a wrapped copy would split it (and its +).
    expression = [ln for ln in lines if "ai-requested-deployment" in ln and "ToLowerInvariant" in ln]
    assert len(expression) == 1 and expression[0].lstrip().startswith("+") and len(expression[0]) > 300
    assert f"      scope: {AOAI}" in lines  # the role assignment's diff line, whole: the id not split


def test_apply_json_lists_each_change_once_with_plain_text_policy(world: World,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "apply", "--account", AOAI, *_common(world), "--json")
    body = json.loads(out)
    assert code == 0 and body["notFound"] is None
    assert body["applied"] == [{"action": c["action"], "kind": c["kind"], "id": c["id"]}
                               for c in body["changes"]]
    policy = next(c for c in body["changes"] if c["kind"] == "policy")
    text = "\n".join(policy["diff"])
    assert "&quot;" not in text and "&amp;" not in text and "&lt;" not in text
    assert 'MatchedParameters.ContainsKey("deployment-id")' in text and "as JObject)?[\"model\"]" in text


def test_json_with_a_malformed_storage_setting_prints_a_json_error(world: World) -> None:
    proc = _cli("plan", "--account", AOAI, *_common(world), "--record", "--json",
                AzureWebJobsStorage="not a connection string")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "AzureWebJobsStorage" in json.loads(proc.stdout)["error"]
