# The teacher: trained on the dataset with the EDM loss (teacher.source: train), or a
# pretrained EDM snapshot converted to a plain checkpoint (teacher.source: edm_pickle).
# Both rules make results/teacher/model.pt; the config picks one through the rule order.

if config["teacher"]["source"] == "edm_pickle":

    ruleorder: import_teacher > train_teacher

else:

    ruleorder: train_teacher > import_teacher


use rule _train as train_teacher with:
    input:
        unpack(train_input("teacher")),
    output:
        model=naming.TEACHER,
        meta=f"{naming.TEACHER}.meta.json",
    log:
        "results/logs/train_teacher.log",
    # the root of the DAG: first
    priority: 70
    threads: config["threads_teacher"]


rule import_teacher:
    input:
        pkl=config["teacher"]["edm_pickle"],
    output:
        model=naming.TEACHER,
        meta=f"{naming.TEACHER}.meta.json",
    log:
        "results/logs/import_teacher.log",
    conda:
        CONDA_ENV
    shell:
        "diffdistill import-edm {input.pkl} {output.model} > {log} 2>&1"
