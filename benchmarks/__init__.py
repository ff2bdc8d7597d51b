"""The benchmarks: each module measures one thing and writes <out>/<name>.json and
<out>/<name>.md; none passes or fails. Run one from the repository's root as
`python -m benchmarks.<name> --out results/benchmark-runs` (see each module's docstring),
or all of them with `snakemake --cores all results/benchmarks`."""
