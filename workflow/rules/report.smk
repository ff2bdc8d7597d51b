# Tables and figures from result files only: FIDs from the FID JSONs, wall times and
# costs from the models' metadata, curves from the students' fid_curve.json.


rule run_config:
    output:
        report("results/config.yaml", caption="../report/config.rst", category="Config"),
    params:
        text=resolved_config_yaml(),
    log:
        "results/logs/run_config.log",
    localrule: True
    run:
        from diffdistill.io import atomic_path

        with atomic_path(output[0]) as tmp:
            Path(tmp).write_text(params.text)


rule tables:
    input:
        fid=main_table_fid_files(),
        floor="results/fid/floor.json",
        o2mkd_fid=o2mkd_fid_files(),
        o2mkd_profile="results/o2mkd/profile.json",
    output:
        report(directory("results/tables"), patterns=["{name}.csv"], caption="../report/tables.rst",
               category="Tables"),
    log:
        "results/logs/tables.log",
    conda:
        CONDA_ENV
    shell:
        "diffdistill table --fid {input.fid} --floor {input.floor} --o2mkd-fid {input.o2mkd_fid}"
        " --o2mkd-profile {input.o2mkd_profile} --out-dir {output} 2> {log}"


# The ablation suite is its own target (about 13 extra students on the default): the
# main table stays within the CPU budget of `snakemake --cores all results/tables`.
rule ablation_table:
    input:
        ablation_files("fid"),
    output:
        report(directory("results/ablations"), patterns=["{name}.csv"], caption="../report/ablations.rst",
               category="Tables"),
    log:
        "results/logs/ablations.log",
    params:
        ablations=ablation_args("fid"),
        ablation_default=ablation_default_desc(),
    conda:
        CONDA_ENV
    shell:
        "diffdistill ablation-table --ablation {params.ablations} --ablation-default '{params.ablation_default}'"
        " --out-dir {output} 2> {log}"


rule figures:
    input:
        fid=main_table_fid_files(),
        floor="results/fid/floor.json",
        curves=ablation_files("curve"),
        samples=[path for _, path in figure_sample_rows()],
    output:
        report(directory("results/figures"), patterns=["{name}.png"], caption="../report/figures.rst",
               category="Figures"),
    log:
        "results/logs/figures.log",
    params:
        curves=ablation_args("curve"),
        samples=figure_sample_args(),
        reference=row_label(f"reference/nfe{BASE['reference']['nfe']}"),
    conda:
        CONDA_ENV
    shell:
        "diffdistill figures --fid {input.fid} --floor {input.floor} --reference-label '{params.reference}'"
        " --curve {params.curves} --samples {params.samples} --out-dir {output} 2> {log}"
