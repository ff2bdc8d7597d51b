# Teacher trajectories at the student timestamps, cached under a folder named by
# exactly the settings that shape them (solver, K, final-step rule, thresholding,
# t_min, AFS, pool size and seeds, NFE).
rule teacher_trajectories:
    priority: 40
    input:
        teacher="results/teacher/model.pt",
    output:
        traj="results/trajectories/{tv}/nfe{nfe}/traj.pt",
        meta="results/trajectories/{tv}/nfe{nfe}/traj.pt.meta.json",
    log:
        "results/logs/trajectories/{tv}/nfe{nfe}.log",
    wildcard_constraints:
        nfe=r"\d+",
    params:
        args=tv_args,
        sched=SCHED,
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
        "diffdistill trajectories --teacher {input.teacher} --nfe {wildcards.nfe} {params.args}"
        " --t-max {params.sched[t_max]} --rho {params.sched[rho]} --batch-size {params.bs}"
        " --out {output.traj} {params.run} --threads {threads} 2> {log}"
