"""The workflow plans without torch, numpy or pandas: the Snakemake workflow catalog lints
it in an environment holding only Snakemake and snakefmt (tests/lint_catalog.sh builds
that environment; here a guard refuses those imports to diffdistill's own code)."""
import os
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, VENV_BIN, copy_workflow

GUARD = ROOT / "tests/planning_guard"


def guarded(env: dict) -> dict:
    return {**env, "PYTHONPATH": os.pathsep.join([str(GUARD), env.get("PYTHONPATH", "")])}


def test_the_guard_refuses_a_heavy_import_from_diffdistill(cli_env):
    r = subprocess.run([sys.executable, "-c", "import diffdistill.sampling"], env=guarded(cli_env),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "planning guard: diffdistill.sampling imports numpy" in r.stderr, r.stderr[-2000:]
    ok = subprocess.run([sys.executable, "-c", "import numpy, diffdistill.rows, diffdistill.methods as m; m.load_all()"],
                        env=guarded(cli_env), capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr[-2000:]


def user_dataset(root, dataset: dict) -> None:
    """A stand-in for the dataset a config expects the user to make (a dry run reads no
    image): an empty .zip or .npz, or a small class folder."""
    from test_custom_data import make_class_folders

    path = dataset.get("path")
    if not path or dataset.get("url") or (root / path).exists():
        return
    if path.endswith((".zip", ".npz")):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")
    else:
        make_class_folders(root / path, per_class=2)


CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "config").glob("*.yaml") if p.name != "custom.yaml")


@pytest.mark.parametrize("cfg", [*CONFIGS, "config/config.yaml config/custom.yaml"])
def test_the_dry_run_plans_every_job_without_heavy_imports(cfg, tmp_path, cli_env):
    """Every input function, rule parameter and config check of the dry run of every
    shipped config (your own data: config/custom.yaml over the default, as the README
    runs it), with diffdistill's imports of torch, numpy and pandas refused."""
    copy_workflow(tmp_path)
    for name in cfg.split():
        user_dataset(tmp_path, yaml.safe_load((ROOT / name).read_text()).get("dataset", {}))
    r = subprocess.run([str(VENV_BIN / "snakemake"), "-n", "--quiet", "rules", "--configfile", *cfg.split()],
                       cwd=tmp_path, env=guarded(cli_env), capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "planning guard" not in out, out[-3000:]
    assert any(line.split()[:1] == ["distill_sfd"] for line in out.splitlines()), out[-2000:]
