"""Sandbox: the stand-in on a fixed port for hands-on work, optionally seeded the way Azure is.

``python -m importer sandbox [--seed] [--gateway]`` lands here (the named exception in .importlinter).
Seeding goes through the real SDK clients: one APIM service with the product ``ai-consumers``, the
roles the deployment would grant, and two accounts with deployments.
"""

from __future__ import annotations

import threading

from devhost import seed


def main(port: int, *, seeded: bool, gateway: bool) -> int:
    """Serve until interrupted; with ``seeded``, seed first and print the ids to use. Returns 0."""
    from armsim.server import serve_forever, start
    from importer.azure.clients import Clients
    from importer.settings import Settings

    if not seeded:
        serve_forever(port, gateway=gateway)
        return 0
    sim = start(port, gateway=gateway)
    print(f"armsim listening on {sim.url}", flush=True)
    if sim.gateway is not None:
        print(f"armsim gateway on {sim.gateway.url}/{{APIM service name}}", flush=True)
    clients = Clients(Settings.from_env({"IMPORTER_ARM_ENDPOINT": sim.url}))
    seed.create_apim(clients)
    seed.create_product(clients, seed.apim_id(), "ai-consumers")
    seed.grant_importer_roles(clients)  # so `doctor` finds the roles the deployment would grant
    for name, kind, models in (("contoso-aoai", "OpenAI", ("gpt-4o", "text-embedding-3-small")),
                               ("contoso-foundry", "AIServices", ("gpt-4o-mini",))):
        seed.create_account(clients, name=name, kind=kind)
        account = seed.account_id(seed.SUBSCRIPTION, seed.AI_GROUP, name)
        for model in models:
            seed.create_deployment(clients, account, model, model=model)
        print(f"account ({kind}): {account}", flush=True)
    print(f"APIM: {seed.apim_id()}", flush=True)
    print(f"scope: /subscriptions/{seed.SUBSCRIPTION}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0
