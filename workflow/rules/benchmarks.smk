# Benchmarks (benchmarks/*.py): measure, never pass or fail. Each runs alone (it takes
# every core) after the main job: `snakemake --cores all results/benchmarks` writes the
# reports and results/benchmarks/README.md with their headline ratios.
BENCHMARKS = ["sfd_vs_pd", "sampler_overhead", "trajectory_cache", "rebuild", "scaling", "roofline", "contention",
              "featnet_sizes"]


# the inputs of each benchmark (benchmarks/*.py): the built default's models and curves
BENCHMARK_ARGS = {"sfd_vs_pd": f"--sfd {naming.student_dir('sfd', 'default', 2)} --pd {naming.student_dir('pd', 'default', 2)}",
                  "rebuild": "", "scaling": "", "contention": "", "featnet_sizes": ""}


rule run_benchmark:
    input:
        "results/tables",
    output:
        json="results/benchmark-runs/{name}.json",
        md="results/benchmark-runs/{name}.md",
    log:
        "results/logs/benchmarks/{name}.log",
    wildcard_constraints:
        name="|".join(BENCHMARKS),
    params:
        args=lambda w: BENCHMARK_ARGS.get(w.name, f"--teacher {naming.TEACHER}"),
        python=sys.executable,
    threads: ALL_CORES
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "{params.python} benchmarks/{wildcards.name}.py {params.args} --out results/benchmark-runs > {log} 2>&1"


rule benchmarks:
    input:
        expand("results/benchmark-runs/{name}.json", name=BENCHMARKS),
    output:
        directory("results/benchmarks"),
    log:
        "results/logs/benchmarks/summary.log",
    params:
        python=sys.executable,
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "{params.python} benchmarks/summarize.py {input} --out {output} > {log} 2>&1"
