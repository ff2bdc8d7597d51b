# The teacher: trained on the dataset with the EDM loss (teacher.source: train), or a
# pretrained EDM snapshot converted to a plain checkpoint (teacher.source: edm_pickle).
# Both rules make results/teacher/model.pt; the config picks one through the rule order.

if config["teacher"]["source"] == "edm_pickle":

    ruleorder: import_teacher > train_teacher

else:

    ruleorder: train_teacher > import_teacher


rule train_teacher:
    input:
        unpack(train_input("teacher")),
    output:
        model=naming.TEACHER,
        meta=f"{naming.TEACHER}.meta.json",
    log:
        "results/logs/train_teacher.log",
    params:
        args=train_args("teacher"),
        launch=launch,
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "{params.launch}diffdistill train teacher {params.args} --out {output.model} --threads {threads} 2> {log}"


rule import_teacher:
    input:
        pkl=config["teacher"]["edm_pickle"],
    output:
        model=naming.TEACHER,
        meta=f"{naming.TEACHER}.meta.json",
    log:
        "results/logs/import_teacher.log",
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "diffdistill import-edm {input.pkl} {output.model} > {log} 2>&1"
