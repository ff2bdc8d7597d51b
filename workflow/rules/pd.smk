# Progressive Distillation: one job per halving round. Round N (student steps) reads the
# round-2N student as its teacher (the trained teacher when 2N = pd.n0), so rebuilding
# round k leaves every earlier round untouched.
rule distill_pd:
    # the rounds form a serial chain: start it as soon as the teacher exists
    priority: 50
    input:
        unpack(pd_teacher),
    output:
        model="results/students/pd/default/nfe{nfe}/model.pt",
        meta="results/students/pd/default/nfe{nfe}/model.pt.meta.json",
    log:
        "results/logs/distill/pd/default/nfe{nfe}.log",
    wildcard_constraints:
        nfe=r"\d+",
    params:
        p=PD,
        sched=SCHED,
        data=data_args(),
        seed=config["seed"],
        clip=f"--grad-clip {PD['grad_clip']}" if PD["grad_clip"] else "",
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "diffdistill distill-pd --teacher {input.teacher} --nfe {wildcards.nfe} {params.data}"
        " --t-min {params.sched[t_min]} --t-max {params.sched[t_max]} --rho {params.sched[rho]}"
        " --iters {params.p[iters]} --batch-size {params.p[batch_size]} --lr {params.p[lr]}"
        " --lr-schedule {params.p[lr_schedule]} {params.clip} --ckpt-every {params.p[ckpt_every]}"
        " --seed {params.seed} --out {output.model} --threads {threads} 2> {log}"


rule sample_pd:
    input:
        unpack(pd_sample_model),
    output:
        samples="results/samples/{row}/nfe{nfe}/samples.npz",
        grid="results/samples/{row}/nfe{nfe}/grid.png",
    log:
        "results/logs/samples/{row}/nfe{nfe}.log",
    wildcard_constraints:
        row=r"pd-teacher|students/pd/default",
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
        "diffdistill sample --model {input.model} --solver euler --afs false --pd-grid true"
        " --nfe {wildcards.nfe} --t-min {params.sched[t_min]} --t-max {params.sched[t_max]}"
        " --rho {params.sched[rho]} --seeds {params.seeds} --batch-size {params.e[batch_size]}"
        " --out {output.samples} --grid {output.grid} --grid-count {params.e[grid_count]}"
        " {params.run} --threads {threads} 2> {log}"


ruleorder: sample_pd > sample_student
