# Progressive Distillation: one job per halving round. Round N (student steps) reads the
# round-2N student as its teacher (the trained teacher when 2N = pd.n0), so rebuilding
# round k leaves every earlier round untouched.
PD = config["pd"]

for _n in PD["nfe"]:
    if _n < 1 or PD["n0"] % _n or (PD["n0"] // _n) & (PD["n0"] // _n - 1) or _n == PD["n0"]:
        sys.exit(f"config error: pd.nfe {_n} is not pd.n0 = {PD['n0']} halved one or more times")

LABELS["students/pd/default"] = "PD (progressive distillation)"
LABELS["pd-teacher"] = "PD first teacher (DDIM on the PD grid)"


def pd_teacher(wildcards):
    n = int(wildcards.nfe)
    if 2 * n == PD["n0"]:
        return {"teacher": "results/teacher/model.pt"}
    return {"teacher": f"results/students/pd/default/nfe{2 * n}/model.pt"}


def pd_fid_files():
    files = [f"results/fid/pd-teacher/nfe{PD['n0']}/fid.json"]
    return files + [f"results/fid/students/pd/default/nfe{n}/fid.json" for n in PD["nfe"]]


rule distill_pd:
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
        "{DD} distill-pd --teacher {input.teacher} --nfe {wildcards.nfe} {params.data}"
        " --t-min {params.sched[t_min]} --t-max {params.sched[t_max]} --rho {params.sched[rho]}"
        " --iters {params.p[iters]} --batch-size {params.p[batch_size]} --lr {params.p[lr]}"
        " --lr-schedule {params.p[lr_schedule]} {params.clip} --ckpt-every {params.p[ckpt_every]}"
        " --seed {params.seed} --out {output.model} --threads {threads} 2> {log}"


def pd_sample_model(wildcards):
    if wildcards.row == "pd-teacher":
        return {"model": "results/teacher/model.pt"}
    return {"model": f"results/students/pd/default/nfe{wildcards.nfe}/model.pt"}


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
        "{DD} sample --model {input.model} --solver euler --afs false --pd-grid true"
        " --nfe {wildcards.nfe} --t-min {params.sched[t_min]} --t-max {params.sched[t_max]}"
        " --rho {params.sched[rho]} --seeds {params.seeds} --batch-size {params.e[batch_size]}"
        " --out {output.samples} --grid {output.grid} --grid-count {params.e[grid_count]}"
        " {params.run} --threads {threads} 2> {log}"


ruleorder: sample_pd > sample_student
