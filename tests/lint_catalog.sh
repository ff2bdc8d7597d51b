#!/usr/bin/env bash
# The Snakemake workflow catalog's checks, in an environment like its own: Snakemake and
# snakefmt at its pins (envs/catalog-lint.txt) and nothing else, so neither diffdistill nor
# torch can be imported. `snakefmt --check` and `snakemake --lint` must pass there, and its
# dry run must plan the same jobs as the project's environment (.venv, the package
# installed): the workflow plans from src/ when the package is missing, and its planning
# imports no torch, numpy or pandas. Needs .venv (bash envs/install.sh) and the package
# index (it installs the two pinned packages into a temporary environment).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ -x .venv/bin/snakemake ] || { echo "lint_catalog.sh: no .venv/bin/snakemake: run bash envs/install.sh first" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stub="$tmp/stub"  # the SLURM plugin asks `scontrol` for its config on start-up: none here
mkdir "$stub" && printf '#!/bin/sh\nexit 1\n' > "$stub/scontrol" && chmod +x "$stub/scontrol"
python=$(readlink -f .venv/bin/python)  # the project's interpreter, outside its venv
if [ -x .venv/bin/uv ]; then
  eval "$(.venv/bin/python envs/uv_env.py)"  # pip's index settings, for uv
  unset UV_CONSTRAINT  # the pins below are the catalog's, not this project's lock
  install() { .venv/bin/uv venv -q --python "$python" "$tmp/env" && .venv/bin/uv pip install -q --python "$tmp/env/bin/python" -r envs/catalog-lint.txt; }
else
  install() { "$python" -m venv "$tmp/env" && "$tmp/env/bin/pip" install -q --disable-pip-version-check -r envs/catalog-lint.txt; }
fi
install > "$tmp/install.log" 2>&1 || {
  echo "lint_catalog.sh: could not install envs/catalog-lint.txt (the package index must be reachable):" >&2
  tail -5 "$tmp/install.log" >&2; exit 1; }
if "$tmp/env/bin/python" -c "import diffdistill" 2>/dev/null || "$tmp/env/bin/python" -c "import torch" 2>/dev/null; then
  echo "lint_catalog.sh: the catalog environment can import diffdistill or torch" >&2; exit 1
fi
echo "lint_catalog: snakemake $("$tmp/env/bin/snakemake" --version | tail -1), $("$tmp/env/bin/snakefmt" --version | tail -1)"
catalog() { PATH="$tmp/env/bin:$stub:$PATH" "$@"; }
project() { PATH="$root/.venv/bin:$stub:$PATH" "$@"; }
catalog snakefmt --check Snakefile workflow/
catalog snakemake --lint
# the jobs of a dry run, per rule ("Job stats"); the whole output is kept for a failure
plan() {
  local env=$1 log="$tmp/$2.log"
  (cd "$work" && "$env" snakemake -n --quiet rules --configfile "$config") > "$log" 2>&1 || {
    echo "lint_catalog.sh: the dry run of $config fails in the $env environment:" >&2
    tail -30 "$log" >&2; return 1; }
  sed -n '/^Job stats:/,/^total/p' "$log"
}
for config in config/config.yaml config/cifar10.yaml; do  # the digits and CIFAR-10 (EDM import, Inception)
  work="$tmp/$(basename "$config" .yaml)"  # a copy without results/, so both plan every job
  mkdir "$work" && cp -rL Snakefile workflow params.yaml config profiles envs pyproject.toml src "$work"/
  rm -rf "$work"/src/*.egg-info
  a=$(plan catalog "$(basename "$config" .yaml)-catalog")
  b=$(plan project "$(basename "$config" .yaml)-project")
  if [ -z "$a" ] || [ "$a" != "$b" ]; then
    echo "lint_catalog.sh: the dry run of $config plans other jobs without the package:" >&2
    diff <(echo "$a") <(echo "$b") >&2 || true
    exit 1
  fi
  echo "lint_catalog: $config: the same $(echo "$a" | awk '/^total/ {print $2; exit}') jobs with and without the package"
done
echo "lint_catalog.sh: passed"
