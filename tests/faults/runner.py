"""One fleet pass in its own process (the importer as the CLI runs it), so a test can SIGKILL it.

Reads the usual IMPORTER_* settings from the environment. Not a test module.
"""

from __future__ import annotations

import argparse
import logging

from importer.fleet import enumerate_estate, run_pass, summarise
from importer.reconcile import build_reconciler
from importer.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env()
    rec = build_reconciler(settings, apim_ttl_s=0)
    print(summarise(run_pass(rec, enumerate_estate(rec), concurrency=args.concurrency)))


if __name__ == "__main__":
    main()
