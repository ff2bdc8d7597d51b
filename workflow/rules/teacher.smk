# The teacher: an EDM-preconditioned UNet trained on the dataset with the EDM loss.


rule train_teacher:
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
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        CONDA_ENV
    shell:
        "{DD} train-teacher --out {output.model} {params.data} --net {params.t[net]}"
        " --net-kwargs '{params.net_kwargs}' --sigma-data {params.t[sigma_data]}"
        " --iters {params.t[iters]} --batch-size {params.t[batch_size]} --lr {params.t[lr]}"
        " --ema {params.t[ema]} --ckpt-every {params.t[ckpt_every]} --seed {params.seed}"
        " --threads {threads} 2> {log}"
