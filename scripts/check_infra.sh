#!/usr/bin/env bash
# Offline checks of the Azure deployment (azure.yaml, infra/**), standalone:
#   - every .bicep file parses with tree-sitter-bicep (no ERROR / MISSING nodes)
#   - checkov (--framework bicep, offline) reports zero failed checks; each skip is inline with a reason
#   - importer/settings.py SETTINGS <-> the Function App's app settings in infra/main.bicep, both ways
#   - role ids and the ABAC condition name exactly the intended roles
#   - the postdeploy hook's Event Grid plan (infra/hooks/events.py) matches infra/events.bicep
#
# Usage: scripts/check_infra.sh [extra pytest args]     e.g. -m "not checkov" to skip the ~20 s scan
# Needs the dev requirements (tree-sitter, tree-sitter-bicep) and checkov in .tools/checkov (make does both).
set -euo pipefail

cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi

python - <<'PY'
import importlib.util, shutil, sys
import os
missing = [m for m in ("tree_sitter", "tree_sitter_bicep", "pytest") if importlib.util.find_spec(m) is None]
if not os.path.exists(".tools/checkov/bin/checkov") and shutil.which("checkov") is None:
    missing.append("checkov (make .tools/checkov/bin/checkov)")
if missing:
    sys.exit(f"missing: {', '.join(missing)}; run: make test (installs them)")
PY

# Offline: no guideline download, no package scan, no version check.
export BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false CHECKOV_NO_OUTPUT_VERSION_CHECK=true

# --confcutdir keeps the suite independent of the repository-wide tests/conftest.py (Azurite, ARM stand-in).
exec python -m pytest tests/infra --confcutdir=tests/infra -p no:cacheprovider --durations=3 "$@"
