# Benchmarks (the package benchmarks/, run as python -m benchmarks.<name> from the
# repository): measure, never pass or fail. Each runs alone (it takes every core) after the
# main job: `snakemake --cores all results/benchmarks` writes the reports and
# results/benchmarks/README.md with their headline ratios. The claims build sfd_vs_pd too.
BENCHMARKS_ROOT = str(Path(workflow.current_basedir).parents[1])  # the folder holding benchmarks/
BENCHMARKS = [
    "sfd_vs_pd",
    "sampler_overhead",
    "trajectory_cache",
    "rebuild",
    "scaling",
    "roofline",
    "contention",
    "featnet_sizes",
    "train_step",
    "sfd_gap",
]


# SFD's and PD's NFE-2 students at equal quality (benchmarks.sfd_vs_pd, read by the
# claims): their curves, brought to infinite n by their rows' metrics files
EQUAL_QUALITY = [naming.student_dir(m, "default", 2) for m in ("sfd", "pd")]
_names = [d.removeprefix("results/") for d in EQUAL_QUALITY]  # their rows' names: empty where one is not a row
EQUAL_QUALITY_FID = [rowlib.fid_path(ROWS[n]) for n in _names] if all(n in ROWS for n in _names) else []

# the inputs of each benchmark: the built default's models and curves
BENCHMARK_ARGS = {
    "sfd_vs_pd": "--sfd {} --pd {}".format(*EQUAL_QUALITY)
    + (" --sfd-fid {} --pd-fid {}".format(*EQUAL_QUALITY_FID) if EQUAL_QUALITY_FID else ""),
    "rebuild": "",
    "scaling": "",
    "contention": "",
    "featnet_sizes": "",
    "sfd_gap": f"--threads {ALL_CORES}",  # the main job's SFD students, on curve seeds
}


rule run_benchmark:
    input:
        "results/tables",
        lambda w: (
            EQUAL_QUALITY_FID + [f"{d}/fid_curve.json" for d in EQUAL_QUALITY]
            if w.name == "sfd_vs_pd" and EQUAL_QUALITY_FID
            else []
        ),
    output:
        json="results/benchmark-runs/{name}.json",
        md="results/benchmark-runs/{name}.md",
    log:
        "results/logs/benchmarks/{name}.log",
    wildcard_constraints:
        name="|".join(BENCHMARKS),
    localrule: True
    conda:
        CONDA_ENV
    threads: ALL_CORES
    params:
        args=lambda w: BENCHMARK_ARGS.get(w.name, f"--teacher {naming.TEACHER}"),
        python=sys.executable,
        root=BENCHMARKS_ROOT,
    shell:
        "PYTHONPATH={params.root} {params.python} -m benchmarks.{wildcards.name} {params.args} --out results/benchmark-runs > {log} 2>&1"


rule benchmarks:
    input:
        expand("results/benchmark-runs/{name}.json", name=BENCHMARKS),
    output:
        directory("results/benchmarks"),
    log:
        "results/logs/benchmarks/summary.log",
    localrule: True
    conda:
        CONDA_ENV
    params:
        python=sys.executable,
        root=BENCHMARKS_ROOT,
    shell:
        "PYTHONPATH={params.root} {params.python} -m benchmarks.summarize {input} --out {output} > {log} 2>&1"
