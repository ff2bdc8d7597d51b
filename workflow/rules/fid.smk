# FID: a feature classifier trained by the pipeline (or clean-fid's Inception), the
# dataset's reference statistics with a real-vs-real floor, and one FID JSON per row.


rule train_featnet:
    input:
        data_input(),
    output:
        model="results/featnet/model.pt",
        meta="results/featnet/model.pt.meta.json",
    log:
        "results/logs/train_featnet.log",
    params:
        f=config["featnet"],
        data=data_args(),
        seed=config["seed"],
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        CONDA_ENV
    shell:
        "diffdistill train-featnet --out {output.model} {params.data} --iters {params.f[iters]}"
        " --batch-size {params.f[batch_size]} --lr {params.f[lr]} --seed {params.seed}"
        " --threads {threads} --quiet 2> {log}"


rule reference_stats:
    input:
        featnet_input(),
        data_input(),
        reference_stats_input(),
    output:
        stats="results/featnet/ref_stats.npz",
        floor="results/featnet/floor.json",
    log:
        "results/logs/reference_stats.log",
    params:
        data=data_args(),
        features=features_args(),
        splits=EVAL["floor_splits"],
        bs=EVAL["batch_size"],
        seed=config["seed"],
        ref=reference_stats_args(),
        run=run_args(amp=False),
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "diffdistill ref-stats {params.data} {params.features} --batch-size {params.bs}"
        " --floor-splits {params.splits} --seed {params.seed} {params.ref} --out {output.stats}"
        " --floor-out {output.floor} {params.run} --threads {threads} --quiet 2> {log}"


# The floor row beside the other FID rows (tables, figures). The reference job writes it
# under results/featnet/ so that its outputs share one folder: SFD's training curves
# need the reference statistics before any row of results/fid exists (one DVC stage
# owns results/featnet, another results/fid).
rule fid_floor:
    input:
        "results/featnet/floor.json",
    output:
        "results/fid/floor.json",
    log:
        "results/logs/fid/floor.log",
    localrule: True
    conda:
        CONDA_ENV
    shell:
        "cp {input} {output} 2> {log}"


rule fid:
    input:
        featnet_input(),
        samples="results/samples/{path}/samples.npz",
        ref="results/featnet/ref_stats.npz",
    output:
        "results/fid/{path}/fid.json",
    log:
        "results/logs/fid/{path}.log",
    wildcard_constraints:
        path=r"(?!target/).+/nfe\d+",
    params:
        features=features_args(),
        n=EVAL["num_samples"],
        bs=EVAL["batch_size"],
        label=fid_label,
        nfe=fid_nfe,
        meta=fid_model_meta,
        run=run_args(amp=False),
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "diffdistill fid --samples {input.samples} --ref {input.ref} {params.features}"
        " --num-samples {params.n} --batch-size {params.bs} --row {wildcards.path}"
        " --label '{params.label}' --nfe {params.nfe} {params.meta} --out {output}"
        " {params.run} --threads {threads} 2> {log}"


rule fid_target:
    input:
        featnet_input(),
        traj="results/trajectories/{tv}/nfe{nfe}/traj.pt",
        ref="results/featnet/ref_stats.npz",
    output:
        "results/fid/target/{tv}/nfe{nfe}/fid.json",
    log:
        "results/logs/fid/target/{tv}/nfe{nfe}.log",
    params:
        features=features_args(),
        n=EVAL["num_samples"],
        bs=EVAL["batch_size"],
        run=run_args(amp=False),
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "diffdistill fid --samples {input.traj} --ref {input.ref} {params.features}"
        " --num-samples {params.n} --batch-size {params.bs} --row target"
        " --label 'SFD target (teacher trajectories)' --nfe {wildcards.nfe} --out {output}"
        " {params.run} --threads {threads} 2> {log}"
