#!/usr/bin/env bash
# The Snakemake workflow catalog's checks, in an environment like its own: Snakemake and
# snakefmt at its pins (envs/catalog-lint.txt) and nothing else, so neither diffdistill nor
# torch can be imported. `snakefmt --check` and `snakemake --lint` must pass there, and its
# dry run must plan the same jobs as the project's environment (.venv, the package
# installed): the workflow plans from src/ when the package is missing, and its planning
# imports no torch, numpy or pandas. Needs .venv (bash envs/install.sh) for uv and the
# comparison; reaches the package index once to build the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stub="$tmp/stub"  # the SLURM plugin asks `scontrol` for its config on start-up: none here
mkdir "$stub" && printf '#!/bin/sh\nexit 1\n' > "$stub/scontrol" && chmod +x "$stub/scontrol"
if [ -x .venv/bin/uv ]; then
  eval "$(.venv/bin/python envs/uv_env.py)"  # pip's index settings, for uv
  .venv/bin/uv venv -q --python "$(command -v python3)" "$tmp/env"
  .venv/bin/uv pip install -q --python "$tmp/env/bin/python" -r envs/catalog-lint.txt
else
  python3 -m venv "$tmp/env"
  "$tmp/env/bin/pip" install -q --disable-pip-version-check -r envs/catalog-lint.txt
fi
if "$tmp/env/bin/python" -c "import diffdistill" 2>/dev/null || "$tmp/env/bin/python" -c "import torch" 2>/dev/null; then
  echo "lint_catalog.sh: the catalog environment can import diffdistill or torch" >&2; exit 1
fi
echo "lint_catalog: snakemake $("$tmp/env/bin/snakemake" --version | tail -1), $("$tmp/env/bin/snakefmt" --version | tail -1)"
root=$PWD
catalog() { PATH="$tmp/env/bin:$stub:$PATH" "$@"; }
project() { PATH="$root/.venv/bin:$stub:$PATH" "$@"; }
catalog snakefmt --check Snakefile workflow/
catalog snakemake --lint
# the jobs of a dry run, per rule (the second "Job stats" block repeats the first)
plan() { "$@" snakemake -n --quiet rules --configfile "$config" 2>&1 | sed -n '/^Job stats:/,/^total/p'; }
for config in config/config.yaml config/cifar10.yaml; do  # the digits and CIFAR-10 (EDM import, Inception)
  work="$tmp/$(basename "$config" .yaml)"  # a copy without results/, so both plan every job
  mkdir "$work" && cp -rL Snakefile workflow params.yaml config profiles envs pyproject.toml src "$work"/
  rm -rf "$work"/src/*.egg-info
  a=$(cd "$work" && plan catalog); b=$(cd "$work" && plan project)
  if [ -z "$a" ] || [ "$a" != "$b" ]; then
    echo "lint_catalog.sh: the dry run of $config plans other jobs without the package:" >&2
    diff <(echo "$a") <(echo "$b") >&2 || true
    exit 1
  fi
  echo "lint_catalog: $config: the same $(echo "$a" | awk '/^total/ {print $2; exit}') jobs with and without the package"
done
echo "lint_catalog.sh: passed"
