"""Demo: the whole loop offline — stand-in ARM, real SDK clients, the function app's own triggers.

Seeds Azure the way a user would (through the SDK), then drives events, the queue worker and the
timer exactly as the Functions host would call them, and prints what happened at each step.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SUB = "00000000-0000-0000-0000-000000000001"


@dataclass
class Step:
    title: str
    writes: int = 0
    reads: int = 0
    seconds: float = 0.0
    objects: int = 0
    outcome: str = ""


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Demo:
    def __init__(self, console: Any) -> None:
        from armsim.server import start
        from devhost import seed
        from devhost.queues import build_queue
        from importer.azure.clients import Clients, StaticCredential
        from importer.settings import Settings

        self.console = console
        self.seed = seed
        self.sim = start()
        self.env = {"IMPORTER_ARM_ENDPOINT": self.sim.url, "IMPORTER_APIM_ID": seed.apim_id(),
                    "IMPORTER_SCOPES": f"/subscriptions/{SUB}", "AzureWebJobsStorage": "",
                    "AzureWebJobsStorage__accountName": "", "IMPORTER_PRODUCTS": "ai-consumers"}
        # The demo's people (seeding, hand edits) write as an operator, not as the importer.
        settings = Settings.from_env(self.env)
        self.clients = Clients(settings, credential=StaticCredential(seed.OPERATOR_ID))
        # The host's queue, from the same settings as the product's state (no storage: in memory).
        self.queue = build_queue(settings)
        self.steps: list[Step] = []
        self.aoai = seed.account_id(SUB, seed.AI_GROUP, "contoso-aoai")
        self.foundry = seed.account_id(SUB, seed.AI_GROUP, "contoso-foundry")

    # -- output --------------------------------------------------------------------------------

    def say(self, text: str, style: str = "") -> None:
        self.console.print(text, style=style or None, markup=False, highlight=False)

    def heading(self, text: str) -> None:
        from rich.rule import Rule

        # A rule fills the width: on a pipe the console is unbounded (no wrapping), so cap it.
        self.console.print(Rule(text, style="cyan"), width=min(self.console.width, 100))

    def show_changes(self, run: dict[str, Any]) -> None:
        from importer.present import change_lines, print_lines

        print_lines(self.console, change_lines(run.get("changes", []), indent="    ", max_diff=12))

    # -- the host, played faithfully -------------------------------------------------------------

    def deliver_events(self, events: list[dict[str, Any]]) -> int:
        """Each recorded change event → the Event Grid function → (maybe) a queue message."""
        from devhost.host import deliver

        return sum(1 for ev in events if deliver(ev, self.queue))

    def drain_queue(self) -> list[dict[str, Any]]:
        """The queue trigger: one message at a time, as the host would, until the queue is empty."""
        from devhost.host import work
        from importer.service import get_service

        state = get_service().state
        runs: list[dict[str, Any]] = []
        while True:
            batch = self.queue.receive(8)
            if not batch:
                return runs
            for handle, request in batch:
                raised = work(self.queue, handle, request)
                if raised is not None:  # the host would retry, then poison
                    self.say(f"    worker raised (the host would retry): {raised}", "red")
                last = state.history.last_for(request.account)
                if last is not None:
                    runs.append(last.to_dict())

    def timer(self) -> int:
        from devhost.host import fire_timer

        return fire_timer(self.queue)

    @contextmanager
    def step(self, title: str, short: str) -> Iterator[Step]:
        self.heading(title)
        step = Step(short)
        self.sim.log.clear()
        start = time.perf_counter()
        yield step
        step.seconds = time.perf_counter() - start
        step.writes = self.sim.log.writes(path=r"Microsoft\.(ApiManagement|Authorization)")
        step.reads = self.sim.log.reads()
        step.objects = len(self.owned_ids())
        self.steps.append(step)
        self.say(f"  → {step.writes} ARM write(s) to APIM/roles, {step.reads} read(s), "
                 f"{step.seconds:.2f} s", "bold")

    def owned_ids(self) -> list[str]:
        from importer.identity import owned_account

        out = []
        for rid in self.sim.ids():
            body = self.sim.resource(rid) or {}
            desc = (body.get("properties") or {}).get("description")
            if owned_account(desc):
                out.append(rid)
        return out

    def report_runs(self, runs: list[dict[str, Any]]) -> None:
        for run in runs:
            name = run["account"].rsplit("/", 1)[-1]
            self.say(f"  run {run['run_id']} for {name}: {run['outcome']}, {run['writes']} write(s)"
                     + (f" — {run['error']}" if run.get("error") else ""),
                     "green" if run["outcome"] in ("applied", "noop", "offboarded") else "red")
            self.show_changes(run)

    # -- the story -------------------------------------------------------------------------------

    def run(self) -> int:
        from azure.mgmt.cognitiveservices import models as cs

        from importer.identity import api_id
        from importer.service import reset_service

        seed, c = self.seed, self.clients
        self.heading("Setting the scene (through the Azure SDK, against the local ARM stand-in)")
        seed.create_apim(c)
        seed.create_product(c, seed.apim_id(), "ai-consumers")
        seed.create_account(c, name="contoso-aoai", kind="OpenAI")
        seed.create_account(c, name="contoso-foundry", kind="AIServices",
                            tags={"apim-importer-mode": "azure-ai"})
        foreign = self._foreign_api()
        self.say(f"  ARM stand-in at {self.sim.url}")
        self.say("  APIM contoso-apim (system identity on), product ai-consumers, a foreign API "
                 "'payments' that the importer does not own")
        self.say("  AI accounts: contoso-aoai (kind OpenAI), contoso-foundry (kind AIServices, "
                 "tag apim-importer-mode=azure-ai)")
        self.sim.clear_events()
        foreign_before = self.sim.resource(foreign)

        with _env(self.env):
            reset_service()
            with self.step("1. Models are deployed → Event Grid → queue → worker → APIs created",
                           "1 deploy → onboard") as st:
                seed.create_deployment(c, self.aoai, "gpt-4o")
                seed.create_deployment(c, self.aoai, "text-embedding-3-small",
                                       model="text-embedding-3-small", version="1")
                seed.create_deployment(c, self.foundry, "Phi-4", model="Phi-4", version="7",
                                       model_format="Microsoft")
                events = self.sim.events()
                self.say(f"  {len(events)} ResourceWriteSuccess events recorded by the stand-in; "
                         f"{self.deliver_events(events)} queued")
                runs = self.drain_queue()
                self.report_runs(runs)
                st.outcome = ", ".join(sorted({r["outcome"] for r in runs}))

            with self.step("2. The same events again (Event Grid delivers at least once)",
                           "2 same events again") as st:
                self.deliver_events(events)
                runs = self.drain_queue()
                self.report_runs(runs)
                st.outcome = ", ".join(sorted({r["outcome"] for r in runs}))

            with self.step("3. Someone edits the policy and deletes a backend → the timer repairs it",
                           "3 drift → timer repair") as st:
                self._tamper()
                self.sim.log.clear()  # count only the importer's writes
                self.say("  (hand edit: policy replaced by a bare one; backend of contoso-aoai deleted)")
                self.say(f"  timer enqueued {self.timer()} account(s)")
                runs = self.drain_queue()
                self.report_runs(runs)
                st.outcome = ", ".join(sorted({r["outcome"] for r in runs}))

            with self.step("4. Deployment text-embedding-3-small is deleted from contoso-aoai → the "
                           "allow-list shrinks", "4 deployment deleted") as st:
                self.sim.clear_events()
                c.cognitive(SUB).deployments.begin_delete(seed.AI_GROUP, "contoso-aoai",
                                                          "text-embedding-3-small").result()
                self.deliver_events(self.sim.events())
                runs = self.drain_queue()
                self.report_runs(runs)
                st.outcome = ", ".join(sorted({r["outcome"] for r in runs}))

            with self.step("5. contoso-aoai is tagged apim-importer=disabled → offboarded",
                           "5 opt-out → offboard") as st:
                self.sim.clear_events()
                c.cognitive(SUB).accounts.begin_update(
                    seed.AI_GROUP, "contoso-aoai",
                    cs.Account(tags={"apim-importer": "disabled"})).result()
                self.deliver_events(self.sim.events())
                runs = self.drain_queue()
                self.report_runs(runs)
                st.outcome = ", ".join(sorted({r["outcome"] for r in runs}))
            reset_service()

        untouched = self.sim.resource(foreign) == foreign_before
        self.say(f"  foreign API 'payments' untouched: {'yes' if untouched else 'NO'}",
                 "green" if untouched else "bold red")
        still = [rid for rid in self.sim.ids() if api_id(self.seed_ref("contoso-aoai")) in rid]
        self._summary()
        self.sim.stop()
        ok = untouched and not still and all(s.outcome and "failed" not in s.outcome for s in self.steps)
        return 0 if ok else 1

    def seed_ref(self, name: str) -> Any:
        from importer.model import AccountRef

        return AccountRef.parse(self.seed.account_id(SUB, self.seed.AI_GROUP, name))

    def _foreign_api(self) -> str:
        from azure.mgmt.apimanagement import models

        doc = {"openapi": "3.0.1", "info": {"title": "payments", "version": "1"},
               "paths": {"/charge": {"post": {"operationId": "charge",
                                              "responses": {"200": {"description": "ok"}}}}}}
        self.clients.apim(SUB).api.begin_create_or_update(
            self.seed.APIM_GROUP, self.seed.APIM_NAME, "payments", models.ApiCreateOrUpdateParameter(
                display_name="Payments", path="payments", protocols=["https"], format="openapi+json",
                value=json.dumps(doc))).result()
        return f"{self.seed.apim_id()}/apis/payments"

    def _tamper(self) -> None:
        from azure.mgmt.apimanagement import models

        from importer.identity import api_id, backend_id

        ref = self.seed_ref("contoso-aoai")
        apim = self.clients.apim(SUB)
        apim.api_policy.create_or_update(
            self.seed.APIM_GROUP, self.seed.APIM_NAME, api_id(ref), "policy",
            models.PolicyContract(format="xml", value="<policies><inbound><base /></inbound><backend>"
                                  "<base /></backend><outbound><base /></outbound><on-error><base />"
                                  "</on-error></policies>"), if_match="*")
        apim.backend.delete(self.seed.APIM_GROUP, self.seed.APIM_NAME, backend_id(ref), if_match="*")

    def _summary(self) -> None:
        from rich.table import Table

        table = Table(title="Summary", title_style="bold",
                      caption="owned objects: the APIs, backends and role assignments that carry the "
                              "importer's ownership mark after the step (policies and product links "
                              "belong to their API)", caption_justify="left")
        for col in ("step", "outcome", "owned objects", "APIM/role writes", "ARM reads", "time"):
            table.add_column(col, justify="right" if col not in ("step", "outcome") else "left")
        for s in self.steps:
            table.add_row(s.title, s.outcome,
                          str(s.objects), str(s.writes), str(s.reads), f"{s.seconds:.2f} s")
        self.console.print(table)
        self.say(f"Finished at {datetime.now(UTC):%H:%M:%S} UTC, no Azure account and no network used.")


def main(console: Any) -> int:
    return Demo(console).run()
