import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def _no_scontrol(tmp_path_factory):
    """A folder whose `scontrol` fails at once. The SLURM executor plugin runs `scontrol
    show config` (10 s timeout) whenever Snakemake starts; on a machine with a SLURM
    client and no controller (or while tests/slurm_integration.sh starts or stops one)
    every Snakemake start of the tests would wait for it. No test here uses SLURM."""
    stub = tmp_path_factory.mktemp("stub")
    (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (stub / "scontrol").chmod(0o755)
    return stub


def _subprocess_env(stub: Path) -> dict:
    return {**os.environ, "PATH": os.pathsep.join([str(VENV_BIN), str(stub), os.environ.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def _forkserver(_no_scontrol):
    """A diffdistill.forkserver for the session's commands (a workflow run starts its own):
    each command skips torch's start-up, and each test of a command tests it through the
    server (or on its own where the server refuses it: other import-time variables);
    tests/test_forkserver.py compares the two ways."""
    from diffdistill import forkserver

    env = _subprocess_env(_no_scontrol)
    path = forkserver.start(env)  # for the commands given cli_env only
    yield path
    forkserver.stop(path)


@pytest.fixture
def cli_env(_no_scontrol, _forkserver):
    """Environment for subprocesses: the venv's console scripts first on PATH (and no
    SLURM controller to wait for), and the session's fork server."""
    return {**_subprocess_env(_no_scontrol), "DIFFDISTILL_FORKSERVER": _forkserver}


WORKFLOW_FILES = ("Snakefile", "workflow", "params.yaml", "config", "profiles", "envs", "benchmarks")  # the claims run one


def copy_workflow(dst: Path, names=WORKFLOW_FILES) -> None:
    """The workflow's files (or `names`, paths relative to the repository) copied into
    `dst`, without bytecode caches or egg-info."""
    for name in names:
        src = ROOT / name
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():  # links inside (config/config.yaml -> ../params.yaml) become copies
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, dst / name)


def ran_rules(out: str) -> set:
    """Rules of the Snakemake jobs a run's output says it started."""
    return set(re.findall(r"^(?:local)?rule (\w+):$", out, re.M))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, _no_scontrol):
    """`snakemake --cores 2 all --configfile config/test.yaml` in a copy of the workflow,
    run once per session (its two tests share tests/test_workflow.py, which the slow tier
    runs in one pytest process): the end-to-end test reads it, the new-method test starts
    from its results (copied with their times and Snakemake's records)."""
    work = tmp_path_factory.mktemp("tiny")
    copy_workflow(work)
    cmd = [str(VENV_BIN / "snakemake"), "--cores", "2", "all", "--configfile", "config/test.yaml"]
    r = subprocess.run(cmd, cwd=work, env=_subprocess_env(_no_scontrol), capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return work, cmd


FLOAT32_EPS = 2.0 ** -23


def assert_close_f32(actual, expected, ulps: float = 16, msg: str = ""):
    """Parity up to float32 rounding: |actual - expected| <= ulps * eps32 * max|expected|.

    Another CPU's kernels (or another summation order) round float32 differently; each
    output element sums terms as large as the largest output, so the bound scales with
    the reference's magnitude instead of a fixed absolute tolerance."""
    import numpy as np

    a = torch.as_tensor(np.asarray(actual) if not torch.is_tensor(actual) else actual).detach().double()
    e = torch.as_tensor(np.asarray(expected) if not torch.is_tensor(expected) else expected).detach().double()
    assert a.shape == e.shape, f"{msg} shape {tuple(a.shape)} != {tuple(e.shape)}"
    scale = max(float(e.abs().max()) if e.numel() else 0.0, 1.0)
    tol = ulps * FLOAT32_EPS * scale
    err = float((a - e).abs().max()) if e.numel() else 0.0
    assert err <= tol, f"{msg} max abs difference {err:.3g} > {tol:.3g} ({ulps} float32 ulps of {scale:.3g})"


def tiny_denoiser(seed=0):
    from diffdistill.precond import build_denoiser

    torch.manual_seed(seed)
    return build_denoiser({"net": "unet", "precond": "edm",
                           "net_kwargs": {"img_resolution": 8, "img_channels": 1, "model_channels": 16,
                                          "channel_mult": [1, 2], "num_blocks": 1}})


SCHED = dict(t_min=0.006, t_max=80.0, rho=7.0)  # the config schema's default schedule


def parse(argv):
    """Parsed arguments of a diffdistill command line (the real parser)."""
    from diffdistill.cli import build_parser
    return build_parser().parse_args([str(a) for a in argv])


def build_method(name, argv, device="cpu"):
    """A method instance built as `diffdistill train <name> ARGV` builds it."""
    from diffdistill.methods import get
    from diffdistill.options import settings_from

    return get(name)(settings_from(parse(["train", name, *argv]), name, get(name).command_options()), device)


def save_tiny_teacher(path, seed=0, std=0.05):
    """A randomised tiny teacher checkpoint (8x8 digits shape) at `path`."""
    from diffdistill.precond import save_denoiser

    model = tiny_denoiser(seed)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    spec = {"net": "unet", "precond": "edm", "net_kwargs": {"img_resolution": 8, "img_channels": 1,
                                                            "model_channels": 16, "channel_mult": [1, 2],
                                                            "num_blocks": 1}}
    save_denoiser(path, model, spec)
    return model


def make_cache(teacher_path, out, nfe, K=2, num=8, seed_start=100000, afs=True, solver="dpmpp3m", **kw):
    """A trajectory cache of the teacher at the student timestamps of `nfe`, as
    `diffdistill trajectories` writes it; returns the flags an SFD run needs to read it."""
    from diffdistill.schedules import Schedule, timesteps
    from diffdistill.trajectories import build_cache

    ts = timesteps("edm", nfe, afs, "euler", Schedule(**SCHED))
    build_cache(teacher_path, out, student_t=ts, K=K, solver=solver, final_step="force", thresholding=True,
                rho=SCHED["rho"], seeds=f"{seed_start}-{seed_start + num - 1}", batch_size=num, progress=False, **kw)
    return ["--K", K, "--pool", num, "--seed-start", seed_start, "--solver", solver, "--thresholding", "true"]


def training_flags(name, cfg, wildcards, input, output):
    """A training job's flags for a validated config, as workflow/rules/common.smk's
    train_args renders them (from the config sections the method reads alone)."""
    from diffdistill import methods
    from diffdistill.options import flags

    m = methods.get(name)
    sections = {k: cfg[k] for k in methods.config_keys(m)}
    tol = {"plateau_tol": cfg["convergence"]["tol"][m.monitor]} if m.curves else {}
    return flags(sections, m.command_options(), **tol, **m.rule_values(sections, wildcards, input, output))
