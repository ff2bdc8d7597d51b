# Evaluation of every result row (diffdistill.rows, declared by the methods): one
# sampling job per row, driven by the checkpoint's recipe plus the row's overrides, and
# one metrics job per row (FID, KID, precision/recall per seed set, their mean and
# spread). Seed set k holds the seeds k*n .. (k+1)*n - 1 (n = eval.num_samples), the
# same for every row.


rule sample:
    input:
        model=lambda w: row(w).model,
    output:
        samples="results/samples/{row}/samples.npz",
        png=report(
            "results/samples/{row}/grid.png",
            caption="../report/samples.rst",
            category="Samples",
            labels={"row": "{row}"},
        ),
    log:
        "results/logs/samples/{row}.log",
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **GPU_RESOURCES,
    params:
        args=sample_args,
        e=eval_keys("batch_size", "grid_count"),
        run=run_args(),
    shell:
        "diffdistill sample --model {input.model} {params.args}"
        " --batch-size {params.e[batch_size]} --out {output.samples} --png {output.png}"
        " --png-count {params.e[grid_count]} {params.run} --threads {threads} 2> {log}"


rule fid:
    input:
        unpack(metrics_input),
    output:
        fid="results/fid/{row}/fid.json",
    log:
        "results/logs/fid/{row}.log",
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **GPU_RESOURCES,
    params:
        args=metrics_args,
        features=features_args(),
        e=eval_keys("num_samples", "batch_size", "kid_subsets", "kid_subset_size", "prdc_k", "prdc_samples"),
        run=run_args(amp=False),
        extra="",
    shell:
        "diffdistill fid --samples {input.samples} --ref {input.ref} {params.features}"
        " --num-samples {params.e[num_samples]} --batch-size {params.e[batch_size]} {params.args}"
        " --kid-subsets {params.e[kid_subsets]} --kid-subset-size {params.e[kid_subset_size]}"
        " --prdc-k {params.e[prdc_k]} --prdc-samples {params.e[prdc_samples]}"
        " {params.extra} --out {output.fid} {params.run} --threads {threads} 2> {log}"


# The reference row's samples and metrics gate every other row's metrics: they run as
# soon as the teacher and the feature network exist, so the metrics jobs fill the gaps
# between the training jobs instead of waiting for the end.
use rule sample as sample_reference with:
    wildcard_constraints:
        row=re.escape(REFERENCE.name),
    priority: 60


ruleorder: sample_reference > sample


# The reference row's metrics also write its features, which every other row's metrics
# read (same-seed agreement, the Frechet distance to the teacher's own samples).
use rule fid as fid_reference with:
    input:
        unpack(lambda w: metrics_input(w, REFERENCE.name)),
    output:
        fid=rowlib.fid_path(REFERENCE),
        features=TEACHER_FILES["teacher_features"],
    log:
        f"results/logs/fid/{REFERENCE.name}.log",
    priority: 60
    params:
        args=lambda w: metrics_args(w, REFERENCE.name),
        extra=f"--features-out {TEACHER_FILES['teacher_features']}",


ruleorder: fid_reference > fid


# Throughput is measured by a job that runs alone: it takes every core.
rule profile:
    input:
        unpack(profile_input),
    output:
        "results/profiles/{table}.json",
    log:
        "results/logs/profiles/{table}.log",
    conda:
        CONDA_ENV
    threads: ALL_CORES
    resources:
        **GPU_RESOURCES,
    params:
        args=profile_args,
        p=EVAL["profile"],
        run=run_args(amp=False),
    shell:
        "diffdistill profile {params.args} --num-images {params.p[num_images]} --batch-size {params.p[batch_size]}"
        " --repeats {params.p[repeats]} --out {output} {params.run} --threads {threads} 2> {log}"


# The claims plan's extra seed sets (diffdistill.budget): a row sampled and measured again
# on seed sets 0 .. S - 1, S above eval.seed_sets, beside its main evaluation, which stays
# as it is (its sets are the first of these, seed for seed).
use rule sample as sample_more_sets with:
    output:
        samples="results/more-sets/{sets}/samples/{row}/samples.npz",
        png="results/more-sets/{sets}/samples/{row}/grid.png",
    log:
        "results/logs/more-sets/{sets}/samples/{row}.log",
    wildcard_constraints:
        sets=r"\d+",


use rule fid as fid_more_sets with:
    input:
        unpack(metrics_input),
        bias=lambda w: rowlib.fid_path(row(w)),  # the main evaluation's bias fit, continued
    output:
        fid="results/more-sets/{sets}/fid/{row}/fid.json",
    log:
        "results/logs/more-sets/{sets}/fid/{row}.log",
    wildcard_constraints:
        sets=r"\d+",
    params:
        args=metrics_args,
        features=features_args(),
        e=eval_keys("num_samples", "batch_size", "kid_subsets", "kid_subset_size", "prdc_k", "prdc_samples"),
        run=run_args(amp=False),
        extra=lambda w, input: f"--bias-from {input.bias}",


use rule fid_reference as fid_more_sets_reference with:
    input:
        unpack(lambda w: metrics_input(w, REFERENCE.name)),
        bias=rowlib.fid_path(REFERENCE),
    output:
        fid=f"results/more-sets/{{sets}}/fid/{REFERENCE.name}/fid.json",
        features=f"results/more-sets/{{sets}}/fid/{REFERENCE.name}/features.npz",
    log:
        f"results/logs/more-sets/{{sets}}/fid/{REFERENCE.name}.log",
    wildcard_constraints:
        sets=r"\d+",
    params:
        args=lambda w: metrics_args(w, REFERENCE.name),
        features=features_args(),
        e=eval_keys("num_samples", "batch_size", "kid_subsets", "kid_subset_size", "prdc_k", "prdc_samples"),
        run=run_args(amp=False),
        extra=lambda w, input, output: f"--features-out {output.features} --bias-from {input.bias}",


ruleorder: fid_more_sets_reference > fid_more_sets
