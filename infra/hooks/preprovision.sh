#!/bin/sh
# azd preprovision hook: see infra/hooks/events.py (validate) and docs/deploy.md.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
py=$(command -v python3 || command -v python || true)
if [ -z "$py" ]; then
  echo "python3 is needed by the preprovision hook" >&2
  exit 1
fi
exec "$py" "$here/events.py" validate
