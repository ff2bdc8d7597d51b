# O2MKD x SFD: one router of small students per NFE (folder N<students>), fine-tuned with
# SFD's loss on SFD's trajectory caches.


rule distill_o2sfd:
    priority: 40
    input:
        unpack(train_input("o2sfd")),
    output:
        model="results/students/o2sfd/{variant}/nfe{nfe}/model.pt",
        meta="results/students/o2sfd/{variant}/nfe{nfe}/model.pt.meta.json",
    log:
        "results/logs/distill/o2sfd/{variant}/nfe{nfe}.log",
    wildcard_constraints:
        variant=r"N\d+",
        nfe=r"\d+",
    params:
        args=train_args("o2sfd"),
        launch=launch,
    threads: THREADS
    resources:
        **NETWORK_JOB,
    conda:
        CONDA_ENV
    shell:
        "{params.launch}diffdistill train o2sfd {params.args} --out {output.model} --threads {threads} 2> {log}"
