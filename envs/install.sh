#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv. Idempotent: a second
# run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.diffdistill-installed
want=$(cat envs/requirements.txt envs/requirements-lock.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check \
      -r envs/requirements.txt -c envs/requirements-lock.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps clean-fid==0.1.35
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import diffdistill.compat; import cleanfid.fid" \
  || { echo "install.sh: clean-fid does not import (see diffdistill/compat.py)" >&2; exit 1; }
