# diffdistill's workflow (workflow/Snakefile, the layout of the Snakemake workflow
# catalog): `snakemake --cores all results/tables` from this folder runs it. The include
# keeps workflow/Snakefile's default target (rule all) as this file's, so `snakemake -n`,
# `--report` and `--lint` with no target mean what they mean there.
workflow.include("workflow/Snakefile", overwrite_default_target=True)
