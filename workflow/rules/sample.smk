# Sampling: the same evaluation seeds for every row; a PNG grid per (row, NFE).


rule sample_teacher:
    input:
        model="results/teacher/model.pt",
    output:
        samples="results/samples/{row}/nfe{nfe}/samples.npz",
        grid="results/samples/{row}/nfe{nfe}/grid.png",
    log:
        "results/logs/samples/{row}/nfe{nfe}.log",
    wildcard_constraints:
        row=r"teacher-[a-z0-9_]+(-afs)?",
        nfe=r"\d+",
    params:
        solver=teacher_row_args,
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
        "diffdistill sample --model {input.model} {params.solver} --nfe {wildcards.nfe}"
        " --t-min {params.sched[t_min]} --t-max {params.sched[t_max]} --rho {params.sched[rho]}"
        " --seeds {params.seeds} --batch-size {params.e[batch_size]} --out {output.samples}"
        " --grid {output.grid} --grid-count {params.e[grid_count]}"
        " {params.run} --threads {threads} 2> {log}"


rule sample_reference:
    input:
        model="results/teacher/model.pt",
    output:
        samples="results/samples/reference/nfe{nfe}/samples.npz",
        grid="results/samples/reference/nfe{nfe}/grid.png",
    log:
        "results/logs/samples/reference/nfe{nfe}.log",
    wildcard_constraints:
        nfe=r"\d+",
    params:
        solver=BASE["reference"]["solver"],
        sched=SCHED,
        seeds=eval_seeds(),
        e=EVAL,
        run=run_args(),
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=GPU,
    conda:
        CONDA_ENV
    shell:
        "diffdistill sample --model {input.model} --solver {params.solver} --afs false --append-zero true"
        " --nfe {wildcards.nfe} --t-min {params.sched[t_min]} --t-max {params.sched[t_max]}"
        " --rho {params.sched[rho]} --seeds {params.seeds} --batch-size {params.e[batch_size]}"
        " --out {output.samples} --grid {output.grid} --grid-count {params.e[grid_count]}"
        " {params.run} --threads {threads} 2> {log}"


rule sample_student:
    input:
        unpack(student_model),
    output:
        samples="results/samples/students/{method}/{variant}/nfe{nfe}/samples.npz",
        grid="results/samples/students/{method}/{variant}/nfe{nfe}/grid.png",
    log:
        "results/logs/samples/students/{method}/{variant}/nfe{nfe}.log",
    wildcard_constraints:
        method=r"sfd|sfdv|sfd2",
        nfe=r"\d+",
    params:
        sched=SCHED,
        sampling=sfd_sampling_args,
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
        "diffdistill sample --model {input.model} --solver euler {params.sampling} --nfe {wildcards.nfe}"
        " --t-max {params.sched[t_max]} --rho {params.sched[rho]}"
        " --seeds {params.seeds} --batch-size {params.e[batch_size]} --out {output.samples}"
        " --grid {output.grid} --grid-count {params.e[grid_count]}"
        " {params.run} --threads {threads} 2> {log}"
