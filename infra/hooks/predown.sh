#!/bin/sh
# azd predown hook: see infra/hooks/events.py (teardown) and docs/deploy.md.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
py=$(command -v python3 || command -v python || true)
if [ -z "$py" ]; then
  echo "python3 is needed by the predown hook" >&2
  exit 1
fi
exec "$py" "$here/events.py" teardown
