# SFD-v: one step-conditioned student for every NFE, trained on the per-NFE SFD caches.


if config["sfdv"]["enabled"]:

    rule distill_sfdv:
        priority: 45
        input:
            unpack(train_input("sfdv")),
        output:
            model=naming.student_model("sfdv"),
            meta=f"{naming.student_model('sfdv')}.meta.json",
        log:
            "results/logs/distill/sfdv/default.log",
        params:
            args=train_args("sfdv"),
            launch=launch,
        threads: THREADS
        resources:
            mem_mb=4000,
            runtime=120,
            gpu=GPU,
        conda:
            CONDA_ENV
        shell:
            "{params.launch}diffdistill train sfdv {params.args} --out {output.model} --threads {threads} 2> {log}"
