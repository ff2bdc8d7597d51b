# Tables and figures from result files only: metrics from the FID JSONs (each carries its
# row's label, family and tables), wall times and costs from the models' metadata, curves
# from the students' fid_curve.json.


# the figures read the main and the ablation rows only (the extended rows have their own tables)
FIGURE_SAMPLES = [rowlib.samples_path(r) for r in rowlib.in_table(ROWS.values(), ("main", "ablations")) if r.figure]
# the students' FID curves the figures read: the ablation panels, and every curve of
# the figures' rows in long form (curves_long.csv, DVC's plot of the training curves)
CURVES = list(
    dict.fromkeys(
        r.meta["curve"] for t in ("main", "ablations") for r in rowlib.in_table(ROWS.values(), t) if "curve" in r.meta
    )
)
STAGE_PARAMS = methods.stage_params(config)  # DVC's params of each method's stage (dvc.yaml)
ABLATION_FID = [rowlib.fid_path(r) for r in ROWS.values() if any(t.startswith("ablations") for t in r.tables)]
ABLATION_FID += [rowlib.fid_path(REFERENCE)] if ABLATION_FID else []  # training-free rows: also against it
ABLATION_CURVES = [
    r.meta["curve"] for r in ROWS.values() if "curve" in r.meta and any(t.startswith("ablations") for t in r.tables)
]


rule run_config:
    output:
        report("results/config.yaml", caption="../report/config.rst", category="Config"),
        params=[f"results/params/{name}.yaml" for name in STAGE_PARAMS],
    log:
        "results/logs/run_config.log",
    localrule: True
    params:
        text=yaml.safe_dump(config, sort_keys=False),
        stages=[yaml.safe_dump(p, sort_keys=False) for p in STAGE_PARAMS.values()],
    run:
        from diffdistill.files import write_text

        write_text(output[0], params.text)
        for path, text in zip(output.params, params.stages):
            write_text(path, text)


rule tables:
    input:
        fid=fid_files("main"),
        floor="results/fid/floor.json",
        profiles=[],  # throughput (a job alone on every core) is measured for results/extended
        meta=methods.report_inputs(config, ("main",)),  # wall times, costs
    output:
        report_dir("tables"),
    log:
        "results/logs/tables.log",
    conda:
        CONDA_ENV
    params:
        tables="",
    shell:
        "diffdistill table --fid {input.fid} --floor {input.floor} --profile {input.profiles} {params.tables}"
        " --out-dir {output} 2> {log}"


# The students that do not fit the main job's budget once every student trains to
# convergence (PD's chain, SFD-v, SFD's second stage, O2MKD x SFD, the O2MKD table), beside
# the main table's rows, with the throughput profiles: built with the claims
# (`snakemake --cores all results/claims`).
EXTENDED = ("main", "extended", "o2mkd")


use rule tables as extended_tables with:
    input:
        fid=list(dict.fromkeys(fid_files(EXTENDED))),
        floor="results/fid/floor.json",
        profiles=[f"results/profiles/{t}.json" for t in EXTENDED if rowlib.profiled(ROWS.values(), t)],
        meta=methods.report_inputs(config, EXTENDED),
    output:
        report_dir("extended"),
    log:
        "results/logs/extended.log",
    params:
        tables="--tables main extended",


# The ablation tables are their own target (extra students and routers): the main table
# stays within the CPU budget of `snakemake --cores all results/tables`.
rule ablation_table:
    input:
        fid=ABLATION_FID,
        curves=ABLATION_CURVES,  # learning curves the ablation tables plot
    output:
        report_dir("ablations"),
    log:
        "results/logs/ablations.log",
    conda:
        CONDA_ENV
    shell:
        "diffdistill ablation-table --fid {input.fid} --out-dir {output} 2> {log}"


# The papers' claims against our numbers. A first pass builds what they read once: the
# extended table, the ablation rows a claim reads (rows.claims_files: not the whole
# ablation tables) and the SFD-vs-PD equal-quality benchmark (built here where both
# NFE-2 students are rows); then a plan (diffdistill.budget) spends what is left of
# claims.budget_minutes on more seed sets (results/more-sets) and, with
# claims.max_train_seeds above 1, training seeds, where power says they reach a claim's X.
CLAIMS_FIRST_PASS = dict(
    fid=rowlib.claims_files(ROWS.values(), EXTENDED),
    extended="results/extended",
    benchmark=["results/benchmark-runs/equal_compute.json"] if EQUAL_COMPUTE_BUILT else [],
)
CLAIMS_ARGS = dict(
    benchmark="--benchmark results/benchmark-runs/equal_compute.json" if EQUAL_COMPUTE_BUILT else "",
    n=config["o2mkd"]["claim_students"],
    budget=config["claims"]["budget_minutes"],
)


checkpoint claims_plan:
    input:
        **CLAIMS_FIRST_PASS,
    output:
        "results/claims-plan/plan.json",
    log:
        "results/logs/claims-plan.log",
    conda:
        CONDA_ENV
    params:
        **CLAIMS_ARGS,
        seeds=config["claims"]["max_train_seeds"],
        slots=max(1, ALL_CORES // THREADS),
    shell:
        "diffdistill claims-plan --fid {input.fid} {params.benchmark} --o2mkd-students {params.n}"
        " --budget-minutes {params.budget} --max-train-seeds {params.seeds} --slots {params.slots}"
        " --out {output} 2> {log}"


rule claims:
    input:
        **CLAIMS_FIRST_PASS,
        plan="results/claims-plan/plan.json",
        # what the plan asks for: more models, more seed sets (read once the plan exists)
        planned=lambda w: rowlib.planned_files(ROWS.values(), checkpoints.claims_plan.get().output[0]),
    output:
        report_dir("claims"),
    log:
        "results/logs/claims.log",
    conda:
        CONDA_ENV
    params:
        **CLAIMS_ARGS,
    shell:
        "diffdistill claims --fid {input.fid} {input.planned} {params.benchmark} --o2mkd-students {params.n}"
        " --budget-minutes {params.budget} --plan {input.plan} --out-dir {output} 2> {log}"


rule figures:
    input:
        samples=FIGURE_SAMPLES,
        curves=CURVES,
        fid=fid_files("main") + fid_files("ablations"),
        floor="results/fid/floor.json",
        profile="results/profiles/main.json",
        meta=methods.report_inputs(config, ("main",)),  # fine-tuning seconds
    output:
        report_dir("figures", "png", "Figures"),
    log:
        "results/logs/figures.log",
    conda:
        CONDA_ENV
    shell:
        "diffdistill figures --fid {input.fid} --floor {input.floor} --profile {input.profile} --out-dir {output}"
        " 2> {log}"
