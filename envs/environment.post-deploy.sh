#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment, from its copy of this file under
# .snakemake/conda/, in Snakemake's working directory: the workflow folder, where
# `snakemake` was started (set DIFFDISTILL_ROOT to the folder otherwise).
set -euo pipefail
root=${DIFFDISTILL_ROOT:-$PWD}
if ! grep -qs '^name = "diffdistill"' "$root/pyproject.toml"; then
  echo "post-deploy: $root is not the diffdistill folder; run snakemake there or set DIFFDISTILL_ROOT" >&2
  exit 1
fi
python -m pip install --no-deps clean-fid==0.1.35
python -m pip install --no-deps -e "$root"
python -c "import diffdistill.compat; import cleanfid.fid"
