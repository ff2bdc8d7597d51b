# diffdistill: teacher -> trajectories -> distillation -> sampling -> metrics -> tables, figures.
# The DAG and output naming are described in README.md. Every method's training rules
# live in workflow/rules/methods/ (one file each, included below whatever their number).
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


envvars:
    "PATH",


include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/featnet.smk"
include: "workflow/rules/trajectories.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/benchmarks.smk"


for _rules in sorted(Path(workflow.basedir, "workflow/rules/methods").glob("*.smk")):

    include: _rules


rule all:
    input:
        "results/tables",
        "results/ablations",
        "results/figures",
        "results/claims",
        "results/config.yaml",
    default_target: True
