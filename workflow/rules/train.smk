# The one training job: every method's rule (rules/methods/<name>.smk) is this rule with
# its own inputs, outputs and log. The method is the one whose folder holds the model
# (`methods.owner`); its flags come from the config sections it reads (`train_args`).
# Memory and run time of each rule are the cluster profile's (profiles/slurm/config.yaml);
# under more than one GPU it runs under torchrun (`launch`).


rule _train:
    output:
        model="results/students/{method}/.template",
    log:
        "results/logs/distill/{method}.log",
    wildcard_constraints:
        method="(?!)",  # matches no file: only the rules made from it run
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **GPU_RESOURCES,
    params:
        launch=launch,
        method=lambda wildcards, output: methods.owner(output.model).name,
        args=train_args,
    shell:
        "{params.launch}diffdistill train {params.method} {params.args} --out {output.model} --threads {threads}"
        " 2> {log}"
