# O2MKD: N small students over contiguous noise ranges (N = 1: one-to-one KD), one router
# per folder (`N<n>`, plus the settings that differ from the default: the O2MKD ablations).
# Its rows sample the router with DDIM at several step counts and with a fast solver; the
# profile rule (evaluate.smk) measures parameters, MACs and throughput of its table.


rule distill_o2mkd:
    priority: 40
    input:
        unpack(train_input("o2mkd")),
    output:
        model="results/students/o2mkd/{variant}/model.pt",
        meta="results/students/o2mkd/{variant}/model.pt.meta.json",
    log:
        "results/logs/distill/o2mkd/{variant}.log",
    wildcard_constraints:
        variant=r"N\d+[A-Za-z0-9_.+-]*",
    params:
        args=train_args("o2mkd"),
        launch=launch,
    threads: THREADS
    resources:
        **NETWORK_JOB,
    conda:
        CONDA_ENV
    shell:
        "{params.launch}diffdistill train o2mkd {params.args} --out {output.model} --threads {threads} 2> {log}"
