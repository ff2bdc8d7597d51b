# The validated config, the result rows of every method and the helpers the rule files share,
# from diffdistill (.methods, .rows, .naming: tested), which plans without torch, numpy or pandas:
# without the package installed (the workflow catalog lints with Snakemake alone) from src/.
import copy
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import yaml

if importlib.util.find_spec("diffdistill") is None:
    sys.path.insert(0, str(Path(workflow.current_basedir, "..", "..", "src").resolve()))
from diffdistill import methods, naming, options, rows as rowlib
from diffdistill.flagtext import flags

# --configfile FILE replaces config/config.yaml, which Snakemake would extend (README: Configuration)
if workflow.overwrite_configfiles:
    config = copy.deepcopy(workflow.config_settings.overwrite_config)  # FILE, then --config values
_files = [Path(f) for f in workflow.overwrite_configfiles or ["config/config.yaml"]]  # texts: no duplicate keys
config = methods.workflow_config(config, {str(f): f.read_text() for f in _files if f.is_file()})
ROWS = {r.name: r for r in methods.rows(config)}
SETS = config["eval"]["seed_sets"]
THREADS = config["threads_per_job"]
ALL_CORES = workflow.global_resources["_cores"].value or 1  # jobs that run alone (unset in --report)
EVAL = config["eval"]
GPU = 1 if config["device"] == "cuda" else 0  # network rules: gpu (SLURM --gpus), on the GPU the config's partition
GPU_RESOURCES = {"gpu": GPU} | ({"slurm_partition": config["gpu_partition"]} if GPU and config["gpu_partition"] else {})
CONDA_ENV = str(Path(workflow.current_basedir, "..", "..", "envs", "environment.yaml").resolve())  # any rules folder
REFERENCE = rowlib.reference(ROWS.values())
TEACHER_FILES = rowlib.teacher_files(REFERENCE)
# jobs call `diffdistill`: not on PATH but beside this Python (.venv/bin/snakemake), its folder goes on PATH
if shutil.which("diffdistill") is None and Path(sys.executable).with_name("diffdistill").exists():
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def eval_keys(*keys):
    """The eval keys that reach a rule's params (params are rerun triggers)."""
    return {k: EVAL[k] for k in keys}


def as_flags(**values):
    """`--name value` for each value that is not None (the one flag renderer, `diffdistill.flagtext`)."""
    return flags(values)


def fid_files(table):
    return rowlib.fid_files(ROWS.values(), table)


def row(wildcards, name=None):
    name = name or wildcards.row
    if name not in ROWS:
        raise ValueError(f"no result row '{name}' in this config")
    return ROWS[name]


def sample_args(wildcards):  # on eval.seed_sets, or on the claims plan's {sets}
    r = row(wildcards)
    return f"{r.sample_flags()} --seeds {r.seeds(EVAL['num_samples'], int(wildcards.get('sets', SETS)))}"


def metrics_input(wildcards, name=None):
    """A row's samples and the features' inputs; for every row but the reference, the
    reference row's samples and features (agreement with the teacher on the same seeds)."""
    r, sets = row(wildcards, name), wildcards.get("sets")
    return {
        "samples": rowlib.samples_path(r, sets),
        "featnet": featnet_input(),
        "ref": naming.REF_STATS,
        **(rowlib.teacher_files(REFERENCE, sets) if r is not REFERENCE else {}),
    }


def metrics_args(wildcards, name=None):
    r, sets = row(wildcards, name), int(wildcards.get("sets", SETS))
    teacher = rowlib.teacher_files(REFERENCE, wildcards.get("sets")) if r is not REFERENCE else {}
    return as_flags(row=r.to_dict(), seed_sets=sets, seeds=r.seeds(EVAL["num_samples"], sets), **teacher) + (
        " --noise-floor" if r.noise_floor and not wildcards.get("sets") else ""
    )


def profile_input(wildcards):
    return {"models": list(dict.fromkeys(r.model for r in rowlib.profiled(ROWS.values(), wildcards.table)))}


def profile_args(wildcards):
    rows = [
        {"name": r.name, "model": r.model, "recipe": r.recipe.to_dict()}
        for r in rowlib.profiled(ROWS.values(), wildcards.table)
    ]
    return f"--rows {shlex.quote(json.dumps(rows, separators=(',', ':')))}"


def cache_args(wildcards):
    return as_flags(nfe=wildcards.nfe, **naming.cache_args(wildcards.cache))


def featnet_input():
    """The feature network's weights file, whichever features are in use."""
    inception = EVAL["features"] == "inception"
    return ([EVAL["inception_weights"]] if EVAL["inception_weights"] else []) if inception else [naming.FEATNET]


def features_args():
    if EVAL["features"] == "inception":
        return as_flags(features="inception", inception_weights=EVAL["inception_weights"])
    return as_flags(features="classifier", featnet=naming.FEATNET)


def data_args():
    return as_flags(dataset=config["dataset"]["name"], dataset_path=config["dataset"]["path"])


def run_args(amp=True):
    """Device (and mixed-precision) flags of the rules that run networks."""
    return as_flags(device=config["device"], amp=config["amp"] if amp else None)


def launch(wildcards, resources):
    """Training rules run under torchrun when their resources ask for more than one GPU
    (the SLURM profile's set-resources): one data-parallel process per GPU."""
    n = int(getattr(resources, "gpu", 0) or 0)
    return f"torchrun --no-python --standalone --nproc_per_node {n} " if n > 1 else ""


def train_input(method):
    """Input function of a method's training rule (the method module says what it reads)."""
    return lambda wildcards: methods.get(method).rule_inputs(config, wildcards)


def train_args(wildcards, input, output):
    """Params of every training job (train.smk's _train): the flags of the method whose folder
    holds the model, from the config sections it reads alone, and the job's wildcards and files."""
    m = methods.owner(output.model)
    sections = {k: config[k] for k in methods.config_keys(m)}
    tol = {"plateau_tol": config["convergence"]["tol"][m.monitor]} if m.curves else {}
    return options.flags(sections, m.command_options(), **tol, **m.rule_values(sections, wildcards, input, output))


def report_dir(name, ext="csv", category="Tables"):
    """results/<name>, a folder of files the HTML report shows with ../report/<name>.rst."""
    return report(
        directory(f"results/{name}"), patterns=[f"{{name}}.{ext}"], caption=f"../report/{name}.rst", category=category
    )
