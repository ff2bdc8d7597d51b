# diffdistill: teacher -> trajectories -> distillation -> sampling -> FID -> tables, figures.
# The DAG and output naming are described in README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


envvars:
    "PATH",


include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/fid.smk"
include: "workflow/rules/trajectories.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/pd.smk"
include: "workflow/rules/o2mkd.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/tables",
        "results/ablations",
        "results/figures",
        "results/config.yaml",
    default_target: True
