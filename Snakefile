# diffdistill's workflow (workflow/Snakefile, the layout of the Snakemake workflow
# catalog): `snakemake --cores all results/tables` from this folder runs it.


include: "workflow/Snakefile"
