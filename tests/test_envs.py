"""The conda environment of the rules: its inline pip part matches the venv's pins, installs
into a fresh venv, and its post-deploy script installs this package from the folder
Snakemake runs it in (conda itself cannot be installed here)."""
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, VENV_BIN, copy_workflow

TEST_TOOLS = {"pytest", "pytest-xdist", "import-linter", "prdc", "snakefmt"}  # the venv's test tools: not in the rules' environment


def _pins(lines) -> dict:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[name.strip().lower()] = version.strip()
    return out


def _env_pip_part() -> list[str]:
    env = yaml.safe_load((ROOT / "envs/environment.yaml").read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def test_environment_lists_the_venv_pins_inline():
    pip_part = _env_pip_part()
    assert not any(line.startswith("-") for line in pip_part), "no -r/-e: Snakemake copies the file elsewhere"
    req = _pins((ROOT / "envs/requirements.txt").read_text().splitlines())
    assert _pins(pip_part) == {k: v for k, v in req.items() if k not in TEST_TOOLS}


def _uv_env() -> dict:
    env = dict(os.environ)
    out = subprocess.run([sys.executable, str(ROOT / "envs/uv_env.py")], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        var, _, value = line.removeprefix("export ").partition("=")
        env[var] = shlex.split(value)[0]
    return env


def test_uv_gets_pips_index_settings():
    env = _uv_env()
    conf = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    for key, var in (("extra-index-url", "UV_INDEX"), ("find-links", "UV_FIND_LINKS")):
        m = re.search(rf"\.{key}='([^']*)'", conf)
        if m:
            assert env[var] == m.group(1)
    assert env["UV_INDEX_STRATEGY"] == "unsafe-best-match"


@pytest.mark.slow
def test_pip_part_installs_in_fresh_venv_and_post_deploy_runs_from_workdir(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    req = tmp_path / "pip-part.txt"
    req.write_text("\n".join(_env_pip_part()) + "\n")
    uv = shutil.which("uv") or (str(VENV_BIN / "uv") if (VENV_BIN / "uv").exists() else None)
    cmd = ([uv, "pip", "install", "-q", "--python", str(venv / "bin/python")] if uv
           else [str(venv / "bin/python"), "-m", "pip", "install", "-q"])
    r = subprocess.run(cmd + ["-r", str(req)], env=_uv_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    # Snakemake runs its copy of the script (under .snakemake/conda/) in the workflow folder
    workdir = tmp_path / "workflow"
    workdir.mkdir()
    copy_workflow(workdir, ("pyproject.toml", "src", "README.md", "LICENSE"))  # no egg-info: a wheel build may write it
    copy = workdir / ".snakemake/conda/0123abcd.post-deploy.sh"
    copy.parent.mkdir(parents=True)
    shutil.copy(ROOT / "envs/environment.post-deploy.sh", copy)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    r = subprocess.run(["bash", str(copy)], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(venv / "bin/diffdistill"), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("diffdistill ")
    # started elsewhere, it says so in one line
    r = subprocess.run(["bash", str(copy)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "DIFFDISTILL_ROOT" in r.stderr
