# Teacher trajectories at the student timestamps, cached under a folder named by exactly
# the settings that shape them (diffdistill.naming: source, solver, K, final-step rule,
# thresholding, the whole schedule (t_min, t_max, rho), AFS, teacher AFS, pool size and first seed); the cache file
# stores the same key with the teacher's hash, and readers check it.


rule teacher_trajectories:
    input:
        teacher=lambda w: naming.cache_args(w.cache)["teacher"],
    output:
        traj="results/trajectories/{cache}/nfe{nfe}/traj.pt",
        meta="results/trajectories/{cache}/nfe{nfe}/traj.pt.meta.json",
    log:
        "results/logs/trajectories/{cache}/nfe{nfe}.log",
    wildcard_constraints:
        cache=r"[^/]+",
        nfe=r"\d+",
    # SFD-v, the longest job, waits on every NFE's cache: build them first
    priority: 55
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **GPU_RESOURCES,
    params:
        args=cache_args,
        bs=config["trajectories"]["batch_size"],
        run=run_args(),
    shell:
        "diffdistill trajectories {params.args} --batch-size {params.bs} --out {output.traj} {params.run} --threads {threads} 2> {log}"


# A cache of a student's trajectories (SFD's second stage) lives in the folder of the
# method that reads it, so that method's DVC stage owns it (results/trajectories is the
# teacher's).
use rule teacher_trajectories as student_trajectories with:
    output:
        traj="results/students/{method}/default/trajectories/{cache}/nfe{nfe}/traj.pt",
        meta="results/students/{method}/default/trajectories/{cache}/nfe{nfe}/traj.pt.meta.json",
    log:
        "results/logs/trajectories/{method}/{cache}/nfe{nfe}.log",
