"""CLI: plan | apply | reconcile | explain | test | doctor | sandbox | demo — the same pipeline as the app.

Edges only: parse arguments, build the Reconciler, print. Exit codes follow
`terraform plan -detailed-exitcode`: 0 nothing to do, 2 changes pending (plan), 1 error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from importer.model import Mode, OpenApi
from importer.options import BY_KEY, CLI_FLAGS
from importer.run import Outcome, Run, Trigger
from importer.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


def _console(json_mode: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=json_mode, highlight=False)
    if not console.is_terminal:  # a pipe, a file, CI: never wrap, so ids and URLs stay whole for grep
        console = Console(stderr=json_mode, highlight=False, soft_wrap=True, width=100_000)
    return console


def _settings(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    if getattr(args, "arm_endpoint", None):
        env["IMPORTER_ARM_ENDPOINT"] = args.arm_endpoint
    if getattr(args, "apim", None):
        env["IMPORTER_APIM_ID"] = args.apim
    return Settings.from_env(env)


def build_reconciler(settings: Settings, *, with_state: bool = False) -> Any:
    """The CLI's reconciler: ``--record`` adds the state (locks, history, owned-object index)."""
    from importer.reconcile import build_reconciler as build

    state = None
    if with_state:
        from importer.state.factory import build_state

        state = build_state(settings)
    return build(settings, state=state)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """The explicit options the flags set, by their JSON key (options.OPTIONS' cli column)."""
    return {key: value for flag, key in CLI_FLAGS.items()
            if (value := getattr(args, flag.lstrip("-").replace("-", "_"), None))}


def _fail(console: Any, message: str, json_mode: bool) -> int:
    """The one place an error is printed (the run's WARNING log line is shown only with -v)."""
    if json_mode:
        print(json.dumps({"error": message}))
    else:
        console.print(f"Error: {message}", style="bold red", markup=False, highlight=False)
    return EXIT_ERROR


def cmd_plan_apply(args: argparse.Namespace, *, dry_run: bool) -> int:
    from importer.model import AccountRef, ImporterError
    from importer.present import plan_lines, print_lines

    console = _console(args.json)
    try:
        settings = _settings(args)
        ref = AccountRef.parse(args.account)
        rec = build_reconciler(settings, with_state=args.record)
        run = rec.reconcile(ref, dry_run=dry_run, overrides=_overrides(args), trigger=Trigger.CLI)
    except ImporterError as exc:
        return _fail(console, str(exc), args.json)
    if run.not_found and run.plan is not None and run.plan.empty:
        # Nothing of ours is left for it either: a typo or a deleted account, not "up to date".
        return _fail(console, run.not_found, args.json)
    if args.json:
        print(json.dumps(run.to_json(), indent=2))
    else:
        if run.plan is not None:
            print_lines(console, plan_lines(run.plan))
        _print_pools(console, run.pools)
        for note in run.notes:
            console.print(f"note: {note}", style="dim", markup=False)
        if not dry_run and run.ok:
            console.print(f"Applied: {run.writes} ARM write(s) in {run.duration_ms} ms "
                          f"(run {run.run_id}).", style="bold", markup=False)
        if run.error:
            console.print(f"Error ({run.error_kind}): {run.error}", style="bold red", markup=False)
    return _exit(run, dry_run)


def _exit(run: Run, dry_run: bool) -> int:
    """plan/apply's exit code, from the run's outcome: a failure is an error; a conflict too, but
    for plan, which only reports it as pending; in a dry run, pending writes (account or pools)."""
    if run.outcome is Outcome.CONFLICT:
        return EXIT_ERROR if not dry_run else EXIT_PENDING
    if run.error:
        return EXIT_ERROR
    if dry_run and ((run.plan is not None and not run.plan.empty) or run.outcome is Outcome.PLANNED):
        return EXIT_PENDING
    return EXIT_OK


def _print_pools(console: Any, pools: dict[str, Any] | None) -> None:
    """The shared pools' changes (IMPORTER_POOL_PATH) as a diff: membership, priorities, weights."""
    from importer.present import change_lines, print_lines

    if pools is None:
        return
    changes = pools.get("changes") or []
    if changes:
        console.print("Pools (shared by every account):", style="bold", markup=False)
        print_lines(console, change_lines(changes, indent="  "))
    else:
        console.print("No changes to the pools.", style="bold", markup=False)
    for note in pools.get("notes") or ():
        console.print(f"note: {note}", style="dim", markup=False)
    if pools.get("writes"):
        console.print(f"Pools: {pools['writes']} ARM write(s).", style="bold", markup=False)


def _run_fleet(console: Any, rec: Any, estate: Any, args: argparse.Namespace) -> list[Any]:
    """One pass over the estate, with a progress bar on a terminal (never in JSON mode)."""
    from importer.fleet import run_pass

    if not console.is_terminal or args.json:
        return run_pass(rec, estate, concurrency=args.concurrency, dry_run=args.dry_run)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("reconciling"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True)
    task = progress.add_task("fleet", total=len(estate.targets()))
    with progress:
        return run_pass(rec, estate, concurrency=args.concurrency, dry_run=args.dry_run,
                        on_done=lambda _run: progress.advance(task))


def _print_runs(console: Any, runs: list[Any], estate: Any, pools: dict[str, Any] | None,
                summary: dict[str, Any], dry_run: bool) -> None:
    from rich.table import Table

    table = Table(title=f"{'Plan' if dry_run else 'Reconcile'}: {len(runs)} account(s)")
    for col in ("account", "outcome", "changes", "writes", "ms", "error"):
        table.add_column(col, overflow="fold")
    for r in runs:
        changes = len(r.plan.changes) if r.plan else 0
        style = "red" if r.outcome in (Outcome.FAILED, Outcome.CONFLICT) else "yellow" if changes else None
        table.add_row(r.account.rsplit("/", 1)[-1], r.outcome.value, str(changes), str(r.writes),
                      str(r.duration_ms), r.error or "", style=style)
    console.print(table)
    for note in estate.ignored:
        console.print(f"note: {note}", style="dim", markup=False)
    _print_pools(console, pools)
    console.print("Summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()), style="bold",
                  markup=False)


def _reconcile_exit(runs: list[Any], pools: dict[str, Any] | None, dry_run: bool) -> int:
    """Failed or conflicting runs are an error; in a dry run, pending writes (accounts or pools)."""
    if any(r.outcome in (Outcome.FAILED, Outcome.CONFLICT) for r in runs):
        return EXIT_ERROR
    if not dry_run:
        return EXIT_OK
    accounts_pending = any(r.plan is not None and not r.plan.empty for r in runs)
    pools_pending = pools is not None and any(c["action"] != "conflict" for c in pools["changes"])
    return EXIT_PENDING if accounts_pending or pools_pending else EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    from importer.fleet import enumerate_estate, summarise
    from importer.model import ImporterError

    console = _console(args.json)
    try:
        settings = _settings(args)
        if args.scopes:
            settings = Settings.from_env({**settings.raw, "IMPORTER_SCOPES": args.scopes})
        rec = build_reconciler(settings, with_state=args.record)
        estate = enumerate_estate(rec)
    except ImporterError as exc:
        return _fail(console, str(exc), args.json)
    runs = _run_fleet(console, rec, estate, args)
    summary = summarise(runs)
    pools = estate.pools.to_json() if estate.pools is not None else None
    if args.json:
        print(json.dumps({"summary": summary, "ignored": estate.ignored,
                          "runs": [r.to_json() for r in runs],
                          **({"pools": pools} if pools is not None else {})}, indent=2))
    else:
        _print_runs(console, runs, estate, pools, summary, args.dry_run)
    return _reconcile_exit(runs, pools, args.dry_run)


def cmd_explain(args: argparse.Namespace) -> int:
    from importer.explain import explain
    from importer.model import AccountRef, ImporterError

    console = _console(args.json)
    try:
        settings = _settings(args)
        ref = AccountRef.parse(args.account)
        rec = build_reconciler(settings)  # no history: explaining records nothing
        from importer.state.factory import build_state

        state = build_state(settings)
        history = state.history if state.backend != "memory" else None
        ex = explain(rec, ref, args.deployment, history)
    except ImporterError as exc:
        return _fail(console, str(exc), args.json)
    if args.json:
        print(json.dumps(ex.to_json(), indent=2))
    else:
        marks = {True: ("✔", "green"), False: ("✘", "red"), None: ("·", "dim")}
        for f in ex.findings:
            mark, style = marks[f.ok]
            console.print(f"{mark} {f.check:<14} {f.detail}", style=style, markup=False, highlight=False)
        console.print(("ON THE GATEWAY: " if ex.on_gateway else "NOT ON THE GATEWAY: ") + ex.verdict,
                      style="bold green" if ex.on_gateway else "bold red", markup=False)
    return EXIT_OK if ex.on_gateway else EXIT_PENDING


def _usage_text(result: Any) -> str:
    u = result.usage
    if u is None:
        return ""
    parts = [f"{name} {n}" for name, n in (("prompt", u.prompt), ("completion", u.completion),
                                             ("total", u.total)) if n is not None]
    return "tokens: " + ", ".join(parts) if parts else ""


def _print_probe_result(console: Any, r: Any) -> None:
    """One deployment's answer through the gateway: a line, and why when it failed."""
    if r.source == "skipped":
        console.print(f"· {r.deployment}: skipped, {r.reason}", style="dim", markup=False)
        return
    mark, style = ("✔", "green") if r.ok else ("✘", "red")
    status = str(r.status) if r.status is not None else "no answer"
    how = ""
    if r.stream:
        how = f", streamed: {r.stream.events} events" + ("" if r.stream.done else ", no [DONE]")
    line = f"{mark} {r.deployment} ({r.operation}{how}): {status} in {r.latency_ms} ms"
    extra = [t for t in (_usage_text(r), ", ".join(f"{k}: {v}" for k, v in r.headers)) if t]
    console.print(line + ("  " + "  ".join(extra) if extra else ""), style=style, markup=False)
    if not r.ok:
        console.print(f"    {r.source}: {r.reason}", style=style, markup=False)


def _print_probe_report(console: Any, report: Any) -> None:
    console.print(f"Gateway {report.gateway_url}/{report.api_path} ({report.mode}), key: {report.key}",
                  style="bold", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", style="dim", markup=False)
    for r in report.results:
        _print_probe_result(console, r)
    tried = [r for r in report.results if r.source != "skipped"]
    passed = sum(r.ok for r in tried)
    console.print(f"{'OK' if report.ok else 'FAILED'}: {passed}/{len(tried)} deployment(s) answered "
                  "through the gateway.", style="bold green" if report.ok else "bold red", markup=False)


def cmd_test(args: argparse.Namespace) -> int:
    from importer.model import AccountRef, ImporterError
    from importer.prober import Prober, gateway_test

    console = _console(args.json)
    try:
        settings = _settings(args)
        ref = AccountRef.parse(args.account)
        rec = build_reconciler(settings)
        key = sys.stdin.readline().strip() if args.key == "-" else args.key
        prober = rec.prober or Prober(rec.arm, rec.apim, level="routing", local=rec.arm.clients.local,
                                      retry_wait_s=0.05 if rec.arm.clients.local else 2.0)
        report = gateway_test(prober, settings, ref, deployment=args.deployment, key=key,
                              service=rec.apim_service(), stream=args.stream)
    except ImporterError as exc:
        return _fail(console, str(exc), args.json)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_probe_report(console, report)
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_doctor(args: argparse.Namespace) -> int:
    from importer.doctor import FAIL, PASS, SKIP, WARN, diagnose

    console = _console(args.json)
    settings = _settings(args)
    if args.scopes:
        settings = Settings.from_env({**settings.raw, "IMPORTER_SCOPES": args.scopes})
    report = diagnose(settings, probe_import=args.probe_import)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return report.exit_code
    marks = {PASS: ("✔", "green"), WARN: ("!", "yellow"), FAIL: ("✘", "red"), SKIP: ("·", "dim")}
    for f in report.findings:
        mark, style = marks[f.status]
        where = f" [{f.target}]" if f.target and f.status != PASS else ""
        console.print(f"{mark} {f.id:<20} {f.evidence}{where}", style=style, markup=False, highlight=False)
        if f.fix and f.status in (FAIL, WARN):
            console.print(f"    fix: {f.fix}", style=style, markup=False, highlight=False)
    counts = report.counts()
    console.print(f"{report.status.upper()}: " + ", ".join(f"{counts[s]} {s}" for s in counts),
                  style={PASS: "bold green", WARN: "bold yellow", FAIL: "bold red"}[report.status],
                  markup=False)
    return report.exit_code


def cmd_sandbox(args: argparse.Namespace) -> int:
    # Dev hosting, not the product: one of the two imports of devhost/ that .importlinter names.
    from devhost.sandbox import main as sandbox_main

    return sandbox_main(args.port, seeded=args.seed, gateway=args.gateway)


def cmd_demo(args: argparse.Namespace) -> int:
    # Dev hosting, not the product: one of the two imports of devhost/ that .importlinter names.
    from devhost.demo import main as demo_main

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


def _command(sub: Any, name: str, func: Callable[[argparse.Namespace], int], text: str, description: str,
             *, account: bool = True) -> argparse.ArgumentParser:
    """A command of the importer's own: ``text`` is its help line, with the common options."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=text, description=description)
    _add_common(p, account=account)
    p.set_defaults(func=func)
    return p


def _add_scopes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scopes", metavar="IDS", help="comma-separated subscription/resource-group ids "
                   "(default: the setting IMPORTER_SCOPES)")


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def _default_help(key: str) -> str:
    option = BY_KEY[key]
    return f"default: tag {option.tag}, else {option.setting}"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m importer",
        description="Import Azure AI Foundry / Azure OpenAI accounts into Azure API Management, "
                    "and keep them right.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, text in (("plan", "show what would change for one account (exit 0 nothing to do, "
                                "2 changes pending, 1 error)"),
                       ("apply", "apply the changes for one account")):
        p = _command(sub, name, partial(cmd_plan_apply, dry_run=(name == "plan")), text, text)
        p.add_argument("--mode", metavar="MODES",
                       help="client-compatibility mode(s), comma-separated, each its own API: "
                            f"{', '.join(m.value for m in Mode)} ({_default_help('mode')})")
        p.add_argument("--openapi", choices=tuple(m.value for m in OpenApi),
                       help="OpenAPI document: the project's own, or the official one by link from "
                            f"IMPORTER_OPENAPI_BASE_URL ({_default_help('openapi')})")
        p.add_argument("--record", action="store_true",
                       help="record the run in the run history (AzureWebJobsStorage)")

    text = "reconcile every account in the watched scopes (the timer's pass, from the CLI)"
    p = _command(sub, "reconcile", cmd_reconcile, text, text + "; also offboards objects whose account is "
                 "gone. Exit 0 ok, 1 a failure or conflict, 2 changes pending (--dry-run).", account=False)
    _add_scopes(p)
    p.add_argument("--dry-run", action="store_true", help="plan only; write nothing")
    p.add_argument("--concurrency", type=int, default=8, metavar="N",
                   help="accounts reconciled at once (default 8)")
    p.add_argument("--record", action="store_true",
                   help="record each run in the run history (AzureWebJobsStorage)")

    text = "why is (or isn't) this model on the gateway?"
    p = _command(sub, "explain", cmd_explain, text, _sentence(text) + " Walks the importer's checks against "
                 "the current state and the run history and stops at the first that fails. Exit 0 on the "
                 "gateway, 2 not (yet), 1 error. Writes nothing.")
    p.add_argument("--deployment", metavar="NAME", help="the model deployment to ask about")

    text = "send a minimal request per deployment through the APIM gateway, like the portal's Test tab"
    p = _command(sub, "test", cmd_test, text, _sentence(text) + ": chat completions for chat models, "
                 "embeddings for embedding models, at the gateway URL of the APIM service plus the account's "
                 "API path. Prints status, latency, token usage and the token-limit headers the policy "
                 "names, and says whether the gateway (key, routing, allow-list, token limit) or the model "
                 "answered. The key is the importer's own APIM subscription for the API (made on first use, "
                 "read through listSecrets, never printed), or --key. Exit 0 all answered, 1 otherwise.")
    p.add_argument("--deployment", metavar="NAME",
                   help="the deployment to call (default: every routable deployment of the account)")
    p.add_argument("--key", metavar="KEY", help="a subscription key to send instead of the importer's own; "
                   "'-' reads it from stdin (keeps it out of the process list and shell history)")
    p.add_argument("--stream", action="store_true",
                   help="stream the chat completions (stream: true, usage in the last event) and check the "
                   "answer is server-sent events ending in data: [DONE]; embeddings are called as usual")

    text = "check the real target before the importer touches it (read-only but for --probe-import)"
    p = _command(sub, "doctor", cmd_doctor, text, _sentence(text) + ": settings, the watched scopes, the "
                 "APIM service (identity, gateway), the importer's own permissions on APIM and at an AI "
                 "account per scope (ARM's permission read-back, no trial writes), the products, policy "
                 "fragment, cache and official documents the settings and tags name, and the Event Grid "
                 "subscriptions (IMPORTER_EVENT_SUBSCRIPTION). Each finding has an id, a status, the "
                 "evidence and the fix. Exit 0 all passed, 1 any failed, 2 warnings only.", account=False)
    _add_scopes(p)
    p.add_argument("--probe-import", action="store_true",
                   help="also import a tiny throwaway API, read back what APIM kept (description, "
                        "display name, serviceUrl) and delete it, even when a step fails: the one "
                        "write doctor makes")

    p = sub.add_parser("sandbox", help="serve the local ARM stand-in on 127.0.0.1:PORT until stopped",
                       description="Serve the local ARM stand-in (armsim) on 127.0.0.1:PORT until "
                                   "stopped; prints the base URL. Point the importer at it with "
                                   "IMPORTER_ARM_ENDPOINT or --arm-endpoint.")
    p.add_argument("--port", type=int, default=8780, help="TCP port (default 8780; 0 picks one)")
    p.add_argument("--seed", action="store_true", help="seed it through the SDK with an APIM instance "
                   "(identity on, product ai-consumers), two AI accounts with deployments and the "
                   "importer's roles for the caller, and print their ids")
    p.add_argument("--gateway", action="store_true", help="also serve the imported APIs on a local gateway "
                   "(key check, routing, allow-list, a fake model); the APIM service's gatewayUrl points at "
                   "it, so python -m importer test works against the sandbox")
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
    # Without -v only ERROR logs: the command prints each failure itself, once.
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.ERROR,
                        stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "verbose", False):
        logging.getLogger("azure").setLevel(logging.WARNING)
    from importer.model import ImporterError
    from importer.settings import SettingsError

    try:
        code: int = args.func(args)
    except (ImporterError, SettingsError) as exc:  # a setting read late (storage, state): same answer
        return _fail(_console(getattr(args, "json", False)), str(exc), getattr(args, "json", False))
    except BrokenPipeError:  # `… | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code
