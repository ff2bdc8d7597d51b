# Benchmarks (the package benchmarks/, run as python -m benchmarks.<name> from the
# repository): measure, never pass or fail. Each runs alone (it takes every core) after the
# main job: `snakemake --cores all results/benchmarks` writes the reports and
# results/benchmarks/README.md with their headline ratios. The claims build equal_compute too.
BENCHMARKS_ROOT = str(Path(workflow.current_basedir).parents[1])  # the folder holding benchmarks/
BENCHMARKS = [
    "equal_compute",
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


# the few-step students at equal fine-tuning compute (benchmarks.equal_compute, read by the
# claims): SFD, its second stage, PD, ECT, CD and O2MKD x SFD at NFE 1 and 2, the rows that exist
EQUAL_COMPUTE_NAMES = [
    f"students/{m}/nfe{n}"
    for m, nfes in (
        ("sfd/default", [2]),
        ("sfd2/default", [1]),
        ("pd/default", [2, 1]),
        ("cd/ct", [1, 2]),
        ("cd/cd", [1, 2]),
        ("o2sfd/N2", [2]),
    )
    for n in nfes
]
EQUAL_COMPUTE_ROWS = [ROWS[n] for n in EQUAL_COMPUTE_NAMES if n in ROWS]
EQUAL_COMPUTE_FID = [rowlib.fid_path(r) for r in EQUAL_COMPUTE_ROWS]
EQUAL_COMPUTE_BUILT = "students/sfd/default/nfe2" in {r.name for r in EQUAL_COMPUTE_ROWS}

# the inputs of each benchmark: the built default's models and curves
BENCHMARK_ARGS = {
    "equal_compute": f"--fid {' '.join(EQUAL_COMPUTE_FID)} --threads {ALL_CORES} --lr-factors "
    + " ".join(map(str, config["claims"]["lr_factors"])),
    "rebuild": "",
    "scaling": "",
    "contention": "",
    "featnet_sizes": "",
    "sfd_gap": f"--threads {ALL_CORES}",  # the main job's SFD students, on curve seeds
}


rule run_benchmark:
    input:
        "results/tables",
        lambda w: (EQUAL_COMPUTE_FID + [r.model for r in EQUAL_COMPUTE_ROWS] if w.name == "equal_compute" else []),
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
