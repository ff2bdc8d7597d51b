# The FID feature network (a digits classifier trained by the pipeline, or clean-fid's
# Inception) and the dataset's reference statistics with a real-vs-real floor.


rule train_featnet:
    input:
        unpack(train_input("teacher")),
    output:
        model=naming.FEATNET,
        meta="results/featnet/model.pt.meta.json",
    log:
        "results/logs/train_featnet.log",
    # every FID curve (SFD, PD) and every metrics job waits on the feature network and the
    # reference statistics: they run right after the teacher, before the long jobs
    priority: 60
    conda:
        CONDA_ENV
    threads: THREADS
    params:
        f=config["featnet"],
        data=data_args(),
        seed=config["seed"],
        run=run_args(amp=False),
    shell:
        "diffdistill train-featnet --out {output.model} {params.data} --iters {params.f[iters]}"
        " --batch-size {params.f[batch_size]} --lr {params.f[lr]} --seed {params.seed}"
        " {params.run} --threads {threads} --quiet 2> {log}"


rule reference_stats:
    input:
        featnet_input(),
        [EVAL["reference_stats"]] if EVAL["reference_stats"] else [],
        unpack(train_input("teacher")),
    output:
        stats=naming.REF_STATS,
        floor="results/featnet/floor.json",
    log:
        "results/logs/reference_stats.log",
    priority: 60
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **GPU_RESOURCES,
    params:
        data=data_args(),
        features=features_args(),
        ref=as_flags(reference_stats=EVAL["reference_stats"]),
        seed=config["seed"],
        e=eval_keys("batch_size", "floor_splits", "ref_features"),
        run=run_args(amp=False),
    shell:
        "diffdistill ref-stats {params.data} {params.features} --batch-size {params.e[batch_size]}"
        " --floor-splits {params.e[floor_splits]} --seed {params.seed} {params.ref} --out {output.stats}"
        " --ref-features {params.e[ref_features]} --floor-out {output.floor} {params.run} --threads {threads}"
        " --quiet 2> {log}"


# The floor row beside the other FID rows (tables, figures). The reference job writes it
# under results/featnet/ so that its outputs share one folder: training curves need the
# reference statistics before any row of results/fid exists (one DVC stage owns
# results/featnet, another results/fid).
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
