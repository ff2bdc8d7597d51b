#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv from the lock. Idempotent:
# a second run only checks. Installs with uv (bootstrapped into the venv when it is not on
# PATH), which resolves the lock in seconds; falls back to pip when uv cannot be had. uv
# does not read pip's configuration, so envs/uv_env.py hands it the index settings pip
# would use (on some machines the only place the CPU build of torch is found), read from
# `pip config list` at install time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.diffdistill-installed
# the stamp covers this script too: a venv installed another way (say pip before uv) is redone
want=$(cat envs/requirements.txt envs/requirements-lock.txt pyproject.toml envs/install.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  UV=$(command -v uv || true)
  if [ -z "$UV" ] && .venv/bin/python -m pip install -q --disable-pip-version-check uv 2>/dev/null; then
    UV=.venv/bin/uv
  fi
  if [ -n "$UV" ]; then
    eval "$(.venv/bin/python envs/uv_env.py)"  # pip's index settings, for uv
    # --compile-bytecode: uv leaves .pyc to the first import, and with PYTHONDONTWRITEBYTECODE set
    # (or a read-only venv) every job would compile torch's sources again (2 s more per process)
    install() { "$UV" pip install -q --compile-bytecode --python .venv/bin/python "$@"; }
  else
    install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }
  fi
  install -r envs/requirements.txt -c envs/requirements-lock.txt
  install --no-deps clean-fid==0.1.35
  install --no-deps -e .
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import diffdistill.compat; import cleanfid.fid" \
  || { echo "install.sh: clean-fid does not import (see diffdistill/compat.py)" >&2; exit 1; }
