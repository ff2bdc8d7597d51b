# Config validation and the naming helpers every rule file uses.
import os
import re
import shutil
import sys
from pathlib import Path

import yaml

from diffdistill.config import validate as _validate
from diffdistill.io import UserError

try:
    config = _validate(config, yaml.safe_load(Path(workflow.basedir, "workflow/schemas/config.schema.yaml").read_text()))
except UserError as _e:
    sys.exit(f"config error: {_e}")

CONDA_ENV = "../../envs/environment.yaml"
# Rules call the console script `diffdistill`: when it is not on PATH but beside the
# Python running Snakemake (`.venv/bin/snakemake` without an activated venv), put that
# folder on the jobs' PATH.
if shutil.which("diffdistill") is None and Path(sys.executable).with_name("diffdistill").exists():
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
THREADS = config["threads_per_job"]
SCHED = config["schedule"]
EVAL = config["eval"]
TRAJ = config["trajectories"]
SFD = config["sfd"]
BASE = config["baselines"]
# GPU rules declare resources gpu=GPU (the SLURM executor turns it into --gpus).
GPU = 1 if config["device"] == "cuda" else 0


def launch(wildcards, resources):
    """Training rules run under torchrun when their resources ask for more than one GPU
    (the SLURM profile's set-resources): one data-parallel process per GPU."""
    n = int(getattr(resources, "gpu", 0) or 0)
    return f"torchrun --no-python --standalone --nproc_per_node {n} " if n > 1 else ""


def b(x):
    return "true" if x else "false"


def eval_seeds():
    return f"0-{EVAL['num_samples'] - 1}"


def fmt(x):
    """A number as it appears in folder names: no exponent, no trailing zeros."""
    if isinstance(x, bool):
        return str(int(x))
    if isinstance(x, float):
        return f"{x:.10f}".rstrip("0").rstrip(".")
    return str(x)


# ---- SFD students: one folder per setting of the factors the ablations vary --------
# "default" is the main configuration; any other variant is named by the settings that
# differ from it, in this order (e.g. "it100-tmin0.002"), so a setting has one name and
# identical settings share one job, one checkpoint and one trajectory cache.
VARIANT_TAGS = [("iters", "it", r"\d+"), ("solver", "solver", r"[a-z0-9_]+?"), ("K", "K", r"\d+"),
                ("final_step", "final", r"force|dpm|off"), ("afs", "afs", r"[01]"),
                ("t_min", "tmin", r"[0-9.]+"), ("loss", "loss", r"l1|l2"), ("num", "n", r"\d+")]
VARIANT_RE = re.compile("".join(rf"(?:-?{tag}(?P<{key}>{pat}))?" for key, tag, pat in VARIANT_TAGS))


def sfd_default_settings():
    return {"iters": SFD["iters"], "solver": TRAJ["solver"], "K": TRAJ["K"], "final_step": TRAJ["final_step"],
            "afs": SFD["afs"], "t_min": SCHED["t_min"], "loss": SFD["loss"], "num": TRAJ["num"]}


def variant_name(**settings):
    d = sfd_default_settings()
    parts = [f"{tag}{fmt(settings[key])}" for key, tag, _ in VARIANT_TAGS
             if key in settings and settings[key] != d[key]]
    return "-".join(parts) or "default"


def sfd_settings(variant):
    """Settings of an SFD student folder name (the inverse of variant_name)."""
    s = sfd_default_settings()
    if variant == "default":
        return s
    m = VARIANT_RE.fullmatch(variant)
    if m is None:
        raise ValueError(f"SFD variant folder '{variant}' does not name its settings")
    for key, value in m.groupdict().items():
        if value is not None:
            s[key] = type(s[key])(value == "1") if isinstance(s[key], bool) else type(s[key])(value)
    if variant_name(**s) != variant:
        raise ValueError(f"SFD variant folder '{variant}' is not canonical; expected '{variant_name(**s)}'")
    return s


def traj_variant(nfe, settings=None):
    """Folder of a trajectory cache: exactly the settings that shape it."""
    s = settings or sfd_default_settings()
    return (f"{s['solver']}-K{s['K']}-{s['final_step']}-thr{int(TRAJ['thresholding'])}"
            f"-tmin{fmt(s['t_min'])}-afs{int(s['afs'])}-n{s['num']}-s{TRAJ['seed_start']}/nfe{nfe}")


def traj_path(nfe, settings=None):
    return f"results/trajectories/{traj_variant(nfe, settings)}/traj.pt"


ABL = config["ablations"]
ABL_FACTORS = ["solver", "final_step", "afs", "t_min", "loss", "K", "num"]


def ablation_runs():
    """(factor, value, variant) of every ablation student, the default row first."""
    base = {"iters": ABL["iters"] or SFD["iters"]}
    default = sfd_default_settings()
    runs = [("default", "", variant_name(**base))]
    for factor in ABL_FACTORS:
        for value in ABL[factor]:
            if value != default[factor]:
                runs.append((factor, fmt(value), variant_name(**base, **{factor: value})))
    return runs


ABLATION_FILES = {"fid": "results/fid/students/sfd/{variant}/nfe{nfe}/fid.json",
                  "curve": "results/students/sfd/{variant}/nfe{nfe}/fid_curve.json"}


def ablation_files(kind):
    """The FID JSON ("fid") or training curve ("curve") of every ablation row."""
    return [ABLATION_FILES[kind].format(variant=v, nfe=ABL["nfe"]) for _, _, v in ablation_runs()]


def ablation_args(kind):
    """'factor=value=path' of each ablation row (the ablation-table and figures input)."""
    return " ".join(f"'{f}={v}={path}'" for (f, v, _), path in zip(ablation_runs(), ablation_files(kind)))


def ablation_default_desc():
    d = sfd_default_settings()
    iters = ABL["iters"] or SFD["iters"]
    return (f"teacher {d['solver']} with K = {d['K']} and final step '{d['final_step']}', AFS {'on' if d['afs'] else 'off'}, "
            f"t_min {fmt(d['t_min'])}, {d['loss'].upper()} loss, {d['num']} trajectories, {iters} iterations")


def resolved_config_yaml():
    return yaml.safe_dump(config, sort_keys=False)


def figure_sample_rows():
    """(label, samples file) of the sample figure: the reference, then every method at
    each NFE it has, all on the evaluation seeds."""
    ref = BASE["reference"]
    rows = [(f"teacher Heun NFE {ref['nfe']}" if ref["solver"] == "heun" else f"teacher NFE {ref['nfe']}",
             f"results/samples/reference/nfe{ref['nfe']}/samples.npz")]
    rows += [(f"DPM++(3M) NFE {n}", f"results/samples/teacher-dpmpp3m/nfe{n}/samples.npz")
             for n in BASE["nfe"] if "dpmpp3m" in BASE["solvers"] and False in BASE["afs"]]
    rows += [(f"SFD NFE {n}", f"results/samples/students/sfd/default/nfe{n}/samples.npz") for n in SFD["nfe"]]
    if SFDV["enabled"]:
        rows += [(f"SFD-v NFE {n}", f"results/samples/students/sfdv/default/nfe{n}/samples.npz") for n in SFDV["nfe"]]
    if SFD2["enabled"]:
        rows.append(("SFD stage 2 NFE 1", "results/samples/students/sfd2/default/nfe1/samples.npz"))
    rows += [(f"PD NFE {n}", f"results/samples/students/pd/default/nfe{n}/samples.npz") for n in PD["nfe"]]
    return rows


def figure_sample_args():
    return " ".join(f"'{label}={path}'" for label, path in figure_sample_rows())


def heun_ok(nfe, afs):
    return (nfe + (1 if afs else 0)) % 2 == 0


def baseline_rows():
    """(row, nfe) of the teacher's training-free baselines that the solver can hit."""
    rows = []
    for solver in BASE["solvers"]:
        for afs in BASE["afs"]:
            for nfe in BASE["nfe"]:
                if solver == "heun" and not heun_ok(nfe, afs):
                    continue
                rows.append((f"teacher-{solver}{'-afs' if afs else ''}", nfe))
    return rows


def features_args():
    if EVAL["features"] == "inception":
        w = EVAL["inception_weights"]
        return f"--features inception{f' --inception-weights {w}' if w else ''}"
    return "--features classifier --featnet results/featnet/model.pt"


def featnet_input():
    """The feature network's weights file, whichever features are in use."""
    if EVAL["features"] == "inception":
        return [EVAL["inception_weights"]] if EVAL["inception_weights"] else []
    return ["results/featnet/model.pt"]


def run_args(amp=True):
    """Device (and mixed-precision) flags of the rules that run networks."""
    amp_flag = f" --amp {b(config['amp'])}" if amp else ""
    return f"--device {config['device']}{amp_flag}"


def data_input():
    """The dataset file or folder, so a fetch job can produce it; none for embedded data."""
    return [config["dataset"]["path"]] if config["dataset"]["path"] else []


def reference_stats_input():
    return [EVAL["reference_stats"]] if EVAL["reference_stats"] else []


def reference_stats_args():
    return f"--reference-stats {EVAL['reference_stats']}" if EVAL["reference_stats"] else ""


def downloads():
    """(rule suffix, local path, URL, what) of each input that a fetch job may download,
    those whose path and URL the config sets."""
    t, d = config["teacher"], config["dataset"]
    items = [("edm_teacher", t["edm_pickle"], t["edm_pickle_url"], "EDM teacher snapshot",
              t["source"] == "edm_pickle"),
             ("dataset", d["path"], d["url"], f"dataset '{d['name']}'", True),
             ("inception_weights", EVAL["inception_weights"], EVAL["inception_weights_url"],
              "Inception weights", EVAL["features"] == "inception"),
             ("reference_stats", EVAL["reference_stats"], EVAL["reference_stats_url"],
              "clean-fid reference statistics", True)]
    return [(name, path, url, what) for name, path, url, what, used in items if used and path and url]


def all_fid_files():
    files = [f"results/fid/reference/nfe{BASE['reference']['nfe']}/fid.json"]
    files += [f"results/fid/{row}/nfe{nfe}/fid.json" for row, nfe in baseline_rows()]
    files += [f"results/fid/target/{traj_variant(nfe)}/fid.json" for nfe in SFD["nfe"]]
    files += [f"results/fid/students/sfd/default/nfe{nfe}/fid.json" for nfe in SFD["nfe"]]
    return files


LABELS = {"reference": "teacher (reference)", "students/sfd/default": "SFD",
          "target": "SFD target (teacher trajectories)"}


def split_nfe(path):
    """'teacher-euler/nfe2' -> ('teacher-euler', 2)."""
    row, nfe = re.fullmatch(r"(.+)[/]nfe(\d+)", path).groups()
    return row, int(nfe)


def row_label(path):
    """'teacher-dpmpp3m-afs/nfe2' -> 'teacher DPM-Solver++(3M), AFS'."""
    row = split_nfe(path)[0]
    if row in LABELS:
        return LABELS[row]
    if row.startswith("teacher-"):
        names = {"euler": "Euler (DDIM)", "heun": "Heun", "dpmpp2m": "DPM-Solver++(2M)",
                 "dpmpp3m": "DPM-Solver++(3M)", "dpmpp3m_exact": "DPM-Solver++(3M, exact)", "ipndm": "iPNDM"}
        parts = row.split("-")
        suffix = ", AFS" if parts[-1] == "afs" else ""
        return f"teacher {names.get(parts[1], parts[1])}{suffix}"
    return row


def data_args():
    d = config["dataset"]
    path = f" --dataset-path {d['path']}" if d["path"] else ""
    return f"--dataset {d['name']}{path}"


def teacher_net_kwargs():
    import json
    return json.dumps(config["teacher"]["net_kwargs"], separators=(",", ":"))


# ---- from fid.smk ----------------------------------------


def fid_model_meta(wildcards):
    if wildcards.path.startswith("students/sfdv/"):
        row, nfe = split_nfe(wildcards.path)
        return f"--model-meta results/{row}/model.pt.meta.json"
    if wildcards.path.startswith("students/"):
        row, nfe = split_nfe(wildcards.path)
        return f"--model-meta results/{row}/nfe{nfe}/model.pt.meta.json"
    return ""


def fid_nfe(wildcards):
    return split_nfe(wildcards.path)[1]


def fid_label(wildcards):
    return row_label(wildcards.path)


# ---- from trajectories.smk ----------------------------------------

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


# ---- from distill.smk ----------------------------------------


def sfd_inputs(wildcards):
    inputs = {"teacher": "results/teacher/model.pt", "featnet": featnet_input(),
              "ref": "results/featnet/ref_stats.npz"}
    if TRAJ["cache"]:
        inputs["traj"] = traj_path(wildcards.nfe, sfd_settings(wildcards.variant))
    return inputs


def sfd_args(wildcards, input):
    """Teacher trajectories (cache, or regenerated per batch) and the student settings."""
    s = sfd_settings(wildcards.variant)
    traj = (f"--trajectories {input.traj}" if TRAJ["cache"] else
            f"--solver {s['solver']} --K {s['K']} --final-step {s['final_step']} --thresholding {b(TRAJ['thresholding'])}")
    return (f"{traj} --afs {b(s['afs'])} --t-min {s['t_min']} --loss {s['loss']} --iters {s['iters']} {ema_arg(SFD)}")


def sfd_sampling_args(wildcards):
    """--afs and --t-min of a student row: the SFD variant's, else the defaults."""
    if wildcards.method == "sfd":
        s = sfd_settings(wildcards.variant)
        return f"--afs {b(s['afs'])} --t-min {s['t_min']}"
    return f"--afs {b(SFD['afs'])} --t-min {SCHED['t_min']}"


def student_model(wildcards):
    """SFD-v is one model for every NFE; other students have one per NFE."""
    if wildcards.method == "sfdv":
        return {"model": f"results/students/sfdv/{wildcards.variant}/model.pt"}
    return {"model": f"results/students/{wildcards.method}/{wildcards.variant}/nfe{wildcards.nfe}/model.pt"}


SFDV = config["sfdv"]
SFD2 = config["sfd2"]
if SFD2["enabled"] and SFD2["teacher_nfe"] not in SFD["nfe"]:
    sys.exit(f"config error: sfd2.teacher_nfe {SFD2['teacher_nfe']} is not in sfd.nfe {SFD['nfe']}")
if SFD2["enabled"] and (SFD2["teacher_nfe"] + 1) % 2:
    sys.exit(f"config error: sfd2.teacher_nfe {SFD2['teacher_nfe']} must be odd: its {SFD2['teacher_nfe'] + 2} "
             "timestamps must contain the 1-NFE student's 3")
LABELS["students/sfdv/default"] = "SFD-v (one model)"
LABELS["students/sfd2/default"] = "SFD second stage"


def ema_arg(section):
    return f"--ema {section['ema']}" if section.get("ema") else ""


def sfdv_traj():
    return [traj_path(n) for n in SFDV["nfe"]]


def sfdv_sfd2_fid_files():
    files = []
    if SFDV["enabled"]:
        files += [f"results/fid/students/sfdv/default/nfe{n}/fid.json" for n in SFDV["nfe"]]
    if SFD2["enabled"]:
        files.append("results/fid/students/sfd2/default/nfe1/fid.json")
    return files


def main_table_fid_files():
    """Every row of the main table (tables and figures): baselines, SFD family, PD."""
    return all_fid_files() + sfdv_sfd2_fid_files() + pd_fid_files()


# SFD's second stage: its teacher (a stage-1 student) and its cache, whose folder names
# which stage-1 student teaches and the pool
SFD2_TEACHER = f"results/students/sfd/default/nfe{SFD2['teacher_nfe']}/model.pt"
SFD2_TRAJ = (f"results/trajectories/sfd2-from-{variant_name()}-nfe{SFD2['teacher_nfe']}"
             f"-n{TRAJ['num']}-s{TRAJ['seed_start']}/nfe1/traj.pt")


# ---- from sample.smk ----------------------------------------


def teacher_row_args(wildcards):
    afs = wildcards.row.endswith("-afs")
    solver = wildcards.row[len("teacher-"):].removesuffix("-afs")
    return f"--solver {solver} --afs {b(afs)}"


# ---- from pd.smk ----------------------------------------
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


def pd_sample_model(wildcards):
    if wildcards.row == "pd-teacher":
        return {"model": "results/teacher/model.pt"}
    return {"model": f"results/students/pd/default/nfe{wildcards.nfe}/model.pt"}


# ---- from o2mkd.smk ----------------------------------------
O2 = config["o2mkd"]


def o2mkd_models():
    return [f"results/students/o2mkd/n{n}/model.pt" for n in O2["num_students"]]


def o2mkd_fid_files():
    fast, k = O2["fast_solver"], O2["fast_nfe"]
    files = [f"results/fid/teacher-euler/nfe{nfe}/fid.json" for nfe in O2["ddim_nfe"]]
    files.append(f"results/fid/teacher-{fast}/nfe{k}/fid.json")
    for n in O2["num_students"]:
        files += [f"results/fid/o2mkd/n{n}-euler/nfe{nfe}/fid.json" for nfe in O2["ddim_nfe"]]
        files.append(f"results/fid/o2mkd/n{n}-{fast}/nfe{k}/fid.json")
    return files


def o2mkd_student_kwargs():
    import json
    return json.dumps(O2["student_kwargs"], separators=(",", ":"))

