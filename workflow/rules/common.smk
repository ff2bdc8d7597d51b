# Config validation and the naming helpers every rule file uses.
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
# The console script of src/diffdistill: on PATH, or beside the Python running Snakemake
# (so `.venv/bin/snakemake` works without activating the venv).
DD = shutil.which("diffdistill") or str(Path(sys.executable).parent / "diffdistill")
THREADS = config["threads_per_job"]
SCHED = config["schedule"]
EVAL = config["eval"]
TRAJ = config["trajectories"]
SFD = config["sfd"]
BASE = config["baselines"]
# GPU rules declare resources gpu=GPU (the SLURM executor turns it into --gpus).
GPU = 1 if config["device"] == "cuda" else 0
TORCHRUN = str(Path(DD).parent / "torchrun")


def launch(wildcards, resources):
    """Training rules run under torchrun when their resources ask for more than one GPU
    (the SLURM profile's set-resources): one data-parallel process per GPU."""
    n = int(getattr(resources, "gpu", 0) or 0)
    return f"{TORCHRUN} --standalone --nproc_per_node {n} " if n > 1 else ""


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
        return "--features inception" + (f" --inception-weights {w}" if w else "")
    return "--features classifier --featnet results/featnet/model.pt"


def featnet_input():
    """The feature network's weights file, whichever features are in use."""
    if EVAL["features"] == "inception":
        return [EVAL["inception_weights"]] if EVAL["inception_weights"] else []
    return ["results/featnet/model.pt"]


def run_args(amp=True):
    """Device (and mixed-precision) flags of the rules that run networks."""
    return f"--device {config['device']}" + (f" --amp {b(config['amp'])}" if amp else "")


def data_input():
    """The dataset file or folder, so a fetch rule can produce it (embedded data: none)."""
    return [config["dataset"]["path"]] if config["dataset"]["path"] else []


def reference_stats_input():
    return [EVAL["reference_stats"]] if EVAL["reference_stats"] else []


def reference_stats_args():
    return f"--reference-stats {EVAL['reference_stats']}" if EVAL["reference_stats"] else ""


def downloads():
    """(rule suffix, local path, URL, what) of each input that a fetch rule may download:
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


def row_label(path):
    """'teacher-dpmpp3m-afs/nfe2' -> 'teacher DPM-Solver++(3M) + AFS'."""
    row = path.rsplit("/nfe", 1)[0]
    if row in LABELS:
        return LABELS[row]
    if row.startswith("teacher-"):
        names = {"euler": "Euler (DDIM)", "heun": "Heun", "dpmpp2m": "DPM-Solver++(2M)",
                 "dpmpp3m": "DPM-Solver++(3M)", "dpmpp3m_exact": "DPM-Solver++(3M, exact)", "ipndm": "iPNDM"}
        parts = row.split("-")
        return f"teacher {names.get(parts[1], parts[1])}" + (" + AFS" if parts[-1] == "afs" else "")
    return row


def data_args():
    d = config["dataset"]
    return f"--dataset {d['name']}" + (f" --dataset-path {d['path']}" if d["path"] else "")


def teacher_net_kwargs():
    import json
    return json.dumps(config["teacher"]["net_kwargs"], separators=(",", ":"))
