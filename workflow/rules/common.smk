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


def traj_variant(nfe, afs=None, t_min=None):
    """Folder name of a trajectory cache: exactly the settings that shape it."""
    afs = SFD["afs"] if afs is None else afs
    t_min = SCHED["t_min"] if t_min is None else t_min
    return (f"{TRAJ['solver']}-K{TRAJ['K']}-{TRAJ['final_step']}-thr{int(TRAJ['thresholding'])}"
            f"-tmin{t_min}-afs{int(afs)}-n{TRAJ['num']}-s{TRAJ['seed_start']}/nfe{nfe}")


def traj_path(nfe):
    return f"results/trajectories/{traj_variant(nfe)}/traj.pt"


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
    inputs = {"teacher": "results/teacher/model.pt"}
    if TRAJ["cache"]:
        inputs["traj"] = traj_path(wildcards.nfe)
    return inputs


def sfd_traj_arg(wildcards, input):
    if TRAJ["cache"]:
        return f"--trajectories {input.traj}"
    return (f"--solver {TRAJ['solver']} --K {TRAJ['K']} --final-step {TRAJ['final_step']}"
            f" --thresholding {b(TRAJ['thresholding'])}")


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

