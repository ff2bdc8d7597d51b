# Distillation: one SFD student per (variant, NFE) through the shared trainer, each with
# its FID-during-training curve; SFD-v (one model for every NFE) and SFD's second stage.


rule distill_sfd:
    # long jobs first, so the short sampling and FID jobs fill the gaps at the end
    priority: 40
    input:
        unpack(sfd_inputs),
    output:
        model="results/students/sfd/{variant}/nfe{nfe}/model.pt",
        meta="results/students/sfd/{variant}/nfe{nfe}/model.pt.meta.json",
        curve="results/students/sfd/{variant}/nfe{nfe}/fid_curve.json",
    log:
        "results/logs/distill/sfd/{variant}/nfe{nfe}.log",
    wildcard_constraints:
        nfe=r"\d+",
        variant=r"[A-Za-z0-9_.-]+",
    params:
        s=SFD,
        sched=SCHED,
        args=sfd_args,
        features=features_args(),
        curve_seeds=f"0-{SFD['curve_samples'] - 1}",
        seed=config["seed"],
        run=run_args(),
        launch=launch,
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "{params.launch}diffdistill distill --method sfd --teacher {input.teacher} {params.args}"
        " --nfe {wildcards.nfe} --t-max {params.sched[t_max]} --rho {params.sched[rho]}"
        " --batch-size {params.s[batch_size]} --lr {params.s[lr]} --lr-schedule {params.s[lr_schedule]}"
        " --ckpt-every {params.s[ckpt_every]} --seed {params.seed} --out {output.model}"
        " --curve-out {output.curve} --curve-every {params.s[curve_every]} --curve-seeds {params.curve_seeds}"
        " --ref {input.ref} {params.features} {params.run} --threads {threads} 2> {log}"


rule distill_sfdv:
    priority: 45
    input:
        teacher="results/teacher/model.pt",
        traj=sfdv_traj(),
    output:
        model="results/students/sfdv/default/model.pt",
        meta="results/students/sfdv/default/model.pt.meta.json",
    log:
        "results/logs/distill/sfdv/default.log",
    params:
        v=SFDV,
        ema=ema_arg(SFDV),
        sched=SCHED,
        afs=b(SFD["afs"]),
        loss=SFD["loss"],
        seed=config["seed"],
        run=run_args(),
        launch=launch,
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "{params.launch}diffdistill distill-sfdv --teacher {input.teacher} --trajectories {input.traj}"
        " --nfe {params.v[nfe]} --afs {params.afs} --t-min {params.sched[t_min]} --t-max {params.sched[t_max]}"
        " --rho {params.sched[rho]} --loss {params.loss} --iters {params.v[iters]}"
        " --batch-size {params.v[batch_size]} --lr {params.v[lr]} --lr-schedule {params.v[lr_schedule]}"
        " --embed-dim {params.v[embed_dim]} {params.ema} --ckpt-every {params.v[ckpt_every]} --seed {params.seed}"
        " --out {output.model} {params.run} --threads {threads} 2> {log}"


# SFD's second stage: the stage-1 student (Euler with AFS over sfd2.teacher_nfe + 2
# timestamps) teaches a 1-NFE student (3 timestamps, AFS); its trajectories are
# cached at the student's timestamps like the teacher's.
rule sfd2_trajectories:
    priority: 40
    input:
        teacher=SFD2_TEACHER,
    output:
        traj=SFD2_TRAJ,
        meta=f"{SFD2_TRAJ}.meta.json",
    log:
        "results/logs/trajectories/sfd2.log",
    params:
        K=(SFD2["teacher_nfe"] + 1) // 2,
        sched=SCHED,
        seeds=f"{TRAJ['seed_start']}-{TRAJ['seed_start'] + TRAJ['num'] - 1}",
        bs=TRAJ["batch_size"],
        run=run_args(),
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "diffdistill trajectories --teacher {input.teacher} --nfe 1 --afs true --teacher-afs true"
        " --solver euler --K {params.K} --final-step force --thresholding false --seeds {params.seeds}"
        " --t-min {params.sched[t_min]} --t-max {params.sched[t_max]} --rho {params.sched[rho]}"
        " --batch-size {params.bs} --out {output.traj} {params.run} --threads {threads} 2> {log}"


rule distill_sfd2:
    priority: 40
    input:
        teacher=SFD2_TEACHER,
        traj=SFD2_TRAJ,
    output:
        model="results/students/sfd2/default/nfe1/model.pt",
        meta="results/students/sfd2/default/nfe1/model.pt.meta.json",
    log:
        "results/logs/distill/sfd2/default/nfe1.log",
    params:
        s=SFD2,
        ema=ema_arg(SFD2),
        sched=SCHED,
        seed=config["seed"],
        run=run_args(),
        launch=launch,
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "{params.launch}diffdistill distill --method sfd --teacher {input.teacher} --trajectories {input.traj}"
        " --nfe 1 --afs true --t-min {params.sched[t_min]} --t-max {params.sched[t_max]}"
        " --rho {params.sched[rho]} --loss {params.s[loss]} --iters {params.s[iters]}"
        " --batch-size {params.s[batch_size]} --lr {params.s[lr]} --lr-schedule {params.s[lr_schedule]}"
        " {params.ema} --ckpt-every {params.s[ckpt_every]} --seed {params.seed} --out {output.model}"
        " {params.run} --threads {threads} 2> {log}"
