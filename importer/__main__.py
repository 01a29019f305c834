"""Entry point: `python -m importer …` (see importer/cli.py)."""

import sys

from importer.cli import main

sys.exit(main())
