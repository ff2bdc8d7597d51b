# Benchmarks (benchmarks/*.py): measure, never pass or fail. Each runs alone (it takes
# every core) after the main job: `snakemake --cores all results/benchmarks` writes the
# reports and results/benchmarks/README.md with their headline ratios.
BENCHMARKS = ["sfd_vs_pd", "sampler_overhead", "trajectory_cache", "rebuild", "scaling", "roofline", "contention"]


def benchmark_args(wildcards):
    """The inputs of each benchmark (benchmarks/*.py): the built default's models and curves."""
    sfd, pd = naming.student_dir("sfd", "default", 2), naming.student_dir("pd", "default", 2)
    own = {"sfd_vs_pd": f"--sfd {sfd} --pd {pd}", "rebuild": "", "scaling": "", "contention": ""}
    return own.get(wildcards.name, f"--teacher {naming.TEACHER}")


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
        args=benchmark_args,
        python=sys.executable,
    threads: ALL_CORES
    localrule: True
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
    shell:
        "{params.python} benchmarks/summarize.py {input} --out {output} > {log} 2>&1"
