# O2MKD: N small students over contiguous noise ranges (N = 1: one-to-one KD), sampled
# through a router with DDIM at several step counts and with a fast solver, and
# profiled (parameters, MACs per step, throughput) against the teacher.
rule distill_o2mkd:
    priority: 40
    input:
        teacher="results/teacher/model.pt",
    output:
        model="results/students/o2mkd/n{n}/model.pt",
        meta="results/students/o2mkd/n{n}/model.pt.meta.json",
    log:
        "results/logs/distill/o2mkd/n{n}.log",
    wildcard_constraints:
        n=r"\d+",
    params:
        o=O2,
        sched=SCHED,
        data=data_args(),
        student=o2mkd_student_kwargs(),
        seed=config["seed"],
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "diffdistill distill-o2mkd --teacher {input.teacher} --num-students {wildcards.n} {params.data}"
        " --split {params.o[split]} --split-grid {params.o[split_grid]}"
        " --student-kwargs '{params.student}' --kd {params.o[kd]}"
        " --feature-weight {params.o[feature_weight]}"
        " --t-min {params.sched[t_min]} --t-max {params.sched[t_max]} --rho {params.sched[rho]}"
        " --iters {params.o[iters]} --batch-size {params.o[batch_size]} --lr {params.o[lr]}"
        " --lr-schedule {params.o[lr_schedule]} --ckpt-every {params.o[ckpt_every]}"
        " --seed {params.seed} --out {output.model} --threads {threads} 2> {log}"


rule sample_o2mkd:
    input:
        model="results/students/o2mkd/n{n}/model.pt",
    output:
        samples="results/samples/o2mkd/n{n}-{solver}/nfe{nfe}/samples.npz",
        grid="results/samples/o2mkd/n{n}-{solver}/nfe{nfe}/grid.png",
    log:
        "results/logs/samples/o2mkd/n{n}-{solver}/nfe{nfe}.log",
    wildcard_constraints:
        n=r"\d+",
        solver=r"[a-z0-9_]+",
        nfe=r"\d+",
    params:
        sched=SCHED,
        seeds=eval_seeds(),
        e=EVAL,
        run=run_args(),
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "diffdistill sample --model {input.model} --solver {wildcards.solver} --afs false --nfe {wildcards.nfe}"
        " --t-min {params.sched[t_min]} --t-max {params.sched[t_max]} --rho {params.sched[rho]}"
        " --seeds {params.seeds} --batch-size {params.e[batch_size]} --out {output.samples}"
        " --grid {output.grid} --grid-count {params.e[grid_count]} {params.run} --threads {threads} 2> {log}"


rule profile_o2mkd:
    input:
        teacher="results/teacher/model.pt",
        students=o2mkd_models(),
    output:
        "results/o2mkd/profile.json",
    log:
        "results/logs/o2mkd/profile.log",
    params:
        p=O2["profile"],
        sched=SCHED,
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        CONDA_ENV
    shell:
        "diffdistill profile-models --models {input.teacher} {input.students} --nfe {params.p[nfe]}"
        " --num-images {params.p[num_images]} --batch-size {params.p[batch_size]}"
        " --repeats {params.p[repeats]} --t-min {params.sched[t_min]} --t-max {params.sched[t_max]}"
        " --rho {params.sched[rho]} --out {output} --threads {threads} 2> {log}"
