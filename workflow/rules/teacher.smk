# The teacher: an EDM-preconditioned UNet trained on the dataset with the EDM loss
# (teacher.source: train), or a pretrained EDM snapshot converted to a plain checkpoint
# (teacher.source: edm_pickle). Both rules make results/teacher/model.pt; the config
# picks one through the rule order.

if config["teacher"]["source"] == "edm_pickle":

    ruleorder: import_teacher > train_teacher

else:

    ruleorder: train_teacher > import_teacher


rule train_teacher:
    input:
        data_input(),
    output:
        model="results/teacher/model.pt",
        meta="results/teacher/model.pt.meta.json",
    log:
        "results/logs/train_teacher.log",
    params:
        t=config["teacher"],
        data=data_args(),
        net_kwargs=teacher_net_kwargs(),
        seed=config["seed"],
        launch=launch,
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        CONDA_ENV
    shell:
        "{params.launch}diffdistill train-teacher --out {output.model} {params.data} --net {params.t[net]}"
        " --net-kwargs '{params.net_kwargs}' --sigma-data {params.t[sigma_data]}"
        " --iters {params.t[iters]} --batch-size {params.t[batch_size]} --lr {params.t[lr]}"
        " --ema {params.t[ema]} --ckpt-every {params.t[ckpt_every]} --seed {params.seed}"
        " --threads {threads} 2> {log}"


rule import_teacher:
    input:
        pkl=config["teacher"]["edm_pickle"],
    output:
        model="results/teacher/model.pt",
        meta="results/teacher/model.pt.meta.json",
    log:
        "results/logs/import_teacher.log",
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "diffdistill import-edm {input.pkl} {output.model} > {log} 2>&1"
