#!/usr/bin/env bash
# Run by Snakemake after it creates the conda environment (--sdm conda).
set -euo pipefail
pip install --no-deps clean-fid==0.1.35
pip install --no-deps -e "$(dirname "$0")/.."
