# Teacher trajectories at the student timestamps, cached under a folder named by
# exactly the settings that shape them (solver, K, final-step rule, thresholding,
# t_min, AFS, pool size and seeds, NFE).
import re

TV_RE = re.compile(r"(?P<solver>[a-z0-9_]+)-K(?P<K>\d+)-(?P<final>force|dpm|off)-thr(?P<thr>[01])"
                   r"-tmin(?P<tmin>[0-9.]+)-afs(?P<afs>[01])-n(?P<num>\d+)-s(?P<seed>\d+)")


def tv_args(wildcards):
    m = TV_RE.fullmatch(wildcards.tv)
    if m is None:
        raise ValueError(f"trajectory folder '{wildcards.tv}' does not name its settings")
    g = m.groupdict()
    first, last = int(g["seed"]), int(g["seed"]) + int(g["num"]) - 1
    return (f"--solver {g['solver']} --K {g['K']} --final-step {g['final']}"
            f" --thresholding {b(g['thr'] == '1')} --t-min {g['tmin']} --afs {b(g['afs'] == '1')}"
            f" --seeds {first}-{last}")


rule teacher_trajectories:
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
        "{DD} trajectories --teacher {input.teacher} --nfe {wildcards.nfe} {params.args}"
        " --t-max {params.sched[t_max]} --rho {params.sched[rho]} --batch-size {params.bs}"
        " --out {output.traj} {params.run} --threads {threads} 2> {log}"
