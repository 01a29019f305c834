"""CLI: plan | apply | reconcile | explain | test | sandbox | demo — the same pipeline as the app.

Edges only: parse arguments, build the Reconciler, print. Exit codes follow
`terraform plan -detailed-exitcode`: 0 nothing to do, 2 changes pending (plan), 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from importer.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


def _console(json_mode: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=json_mode, highlight=False)
    if not console.is_terminal:  # logs and CI: wide enough for a diff line, never wrapped at 80
        console = Console(stderr=json_mode, highlight=False, width=140)
    return console


def _settings(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    if getattr(args, "arm_endpoint", None):
        env["IMPORTER_ARM_ENDPOINT"] = args.arm_endpoint
    if getattr(args, "apim", None):
        env["IMPORTER_APIM_ID"] = args.apim
    return Settings.from_env(env)


def build_reconciler(settings: Settings, *, with_state: bool = False) -> Any:
    from importer.azure.arm import AzureArm
    from importer.azure.clients import Clients
    from importer.model import ApimRef, InvalidInput
    from importer.reconcile import Reconciler

    if not settings.apim_id:
        raise InvalidInput("no APIM instance: pass --apim <APIM service resource id> or set IMPORTER_APIM_ID")
    apim = ApimRef.parse(settings.apim_id)
    locks = history = None
    if with_state:
        from importer.state.factory import build_state

        state = build_state(settings)
        locks, history = state.locks, state.history
    return Reconciler(settings, AzureArm(Clients(settings)), apim, locks=locks, history=history)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    return {"mode": args.mode} if getattr(args, "mode", None) else {}


def _fail(console: Any, message: str, json_mode: bool) -> int:
    if json_mode:
        print(json.dumps({"error": message}))
    else:
        console.print(f"Error: {message}", style="bold red", markup=False, highlight=False)
    return EXIT_ERROR


def cmd_plan_apply(args: argparse.Namespace, *, dry_run: bool) -> int:
    from importer.model import AccountRef, ImporterError
    from importer.render_text import plan_lines, print_lines

    console = _console(args.json)
    try:
        settings = _settings(args)
        ref = AccountRef.parse(args.account)
        rec = build_reconciler(settings, with_state=args.record)
        run = rec.reconcile(ref, dry_run=dry_run, overrides=_overrides(args), trigger="cli")
    except ImporterError as exc:
        return _fail(console, str(exc), args.json)
    if args.json:
        print(json.dumps(run.to_json(), indent=2))
    else:
        if run.plan is not None:
            print_lines(console, plan_lines(run.plan))
        for note in run.notes:
            console.print(f"note: {note}", style="dim", markup=False)
        if not dry_run and run.ok:
            console.print(f"Applied: {run.writes} ARM write(s) in {run.duration_ms} ms "
                          f"(run {run.run_id}).", style="bold", markup=False)
        if run.error:
            console.print(f"Error ({run.error_kind}): {run.error}", style="bold red", markup=False)
    if run.error and run.outcome != "conflict":
        return EXIT_ERROR
    if run.outcome == "conflict":
        return EXIT_ERROR if not dry_run else EXIT_PENDING
    if dry_run and run.plan is not None and not run.plan.empty:
        return EXIT_PENDING
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from armsim.server import serve_forever

    serve_forever(args.port)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from importer.demo import main as demo_main

    return demo_main(_console())


def _add_common(p: argparse.ArgumentParser, *, account: bool = True) -> None:
    if account:
        p.add_argument("--account", required=True, metavar="ID",
                       help="resource id of the Cognitive Services account (kind OpenAI or AIServices)")
    p.add_argument("--apim", metavar="ID", help="resource id of the APIM service "
                   "(default: the setting IMPORTER_APIM_ID)")
    p.add_argument("--arm-endpoint", metavar="URL", help="ARM base URL, e.g. the local stand-in "
                   "http://127.0.0.1:8780 (default: the setting IMPORTER_ARM_ENDPOINT, else Azure)")
    p.add_argument("--json", action="store_true", help="print one JSON object (for pipelines)")
    p.add_argument("-v", "--verbose", action="store_true", help="log each step to stderr")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m importer",
        description="Import Azure AI Foundry / Azure OpenAI accounts into Azure API Management, "
                    "and keep them right.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, text in (("plan", "show what would change for one account (exit 0 nothing to do, "
                                "2 changes pending, 1 error)"),
                       ("apply", "apply the changes for one account")):
        p = sub.add_parser(name, help=text, description=text)
        _add_common(p)
        p.add_argument("--mode", choices=("azure-openai", "azure-ai", "azure-openai-v1"),
                       help="client-compatibility mode (default: tag apim-importer-mode, "
                            "else IMPORTER_MODE)")
        p.add_argument("--record", action="store_true",
                       help="record the run in the run history (AzureWebJobsStorage)")
        p.set_defaults(func=lambda a, n=name: cmd_plan_apply(a, dry_run=(n == "plan")))

    p = sub.add_parser("sandbox", help="serve the local ARM stand-in on 127.0.0.1:PORT until stopped",
                       description="Serve the local ARM stand-in (armsim) on 127.0.0.1:PORT until "
                                   "stopped; prints the base URL. Point the importer at it with "
                                   "IMPORTER_ARM_ENDPOINT or --arm-endpoint.")
    p.add_argument("--port", type=int, default=8780, help="TCP port (default 8780; 0 picks one)")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("demo", help="the offline end-to-end demo (no Azure account, no network)",
                       description="Start the ARM stand-in in-process, seed an APIM instance and two AI "
                                   "accounts through the SDK, and walk through onboarding, a duplicate "
                                   "event, drift repair, a deleted deployment and an opt-out, through "
                                   "the function app's own triggers.")
    p.set_defaults(func=cmd_demo)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "verbose", False):
        logging.getLogger("azure").setLevel(logging.WARNING)
    code: int = args.func(args)
    return code
