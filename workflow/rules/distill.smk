# Distillation: one student per method x NFE x variant, through the shared trainer.


rule distill_sfd:
    input:
        unpack(sfd_inputs),
    output:
        model="results/students/sfd/default/nfe{nfe}/model.pt",
        meta="results/students/sfd/default/nfe{nfe}/model.pt.meta.json",
    log:
        "results/logs/distill/sfd/default/nfe{nfe}.log",
    wildcard_constraints:
        nfe=r"\d+",
    params:
        s=SFD,
        sched=SCHED,
        traj=sfd_traj_arg,
        afs=b(SFD["afs"]),
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
        "{params.launch}diffdistill distill --method sfd --teacher {input.teacher} {params.traj} --nfe {wildcards.nfe}"
        " --afs {params.afs} --t-min {params.sched[t_min]} --t-max {params.sched[t_max]}"
        " --rho {params.sched[rho]} --loss {params.s[loss]} --iters {params.s[iters]}"
        " --batch-size {params.s[batch_size]} --lr {params.s[lr]} --lr-schedule {params.s[lr_schedule]}"
        " --ckpt-every {params.s[ckpt_every]} --seed {params.seed} --out {output.model}"
        " {params.run} --threads {threads} 2> {log}"
