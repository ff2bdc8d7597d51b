"""The package as a researcher meets it: version, help, a missing clean-fid, live curves
that TensorBoard's own reader returns, and a wheel that works outside the checkout."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, VENV_BIN
from diffdistill import __version__
from diffdistill.cli import main


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version(capsys):
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"diffdistill {__version__}"


def test_sample_help_shows_defaults_and_solvers(capsys):
    code, out, _ = _run(["sample", "--help"], capsys)
    assert code == 0
    assert "{euler,heun,dpmpp2m,dpmpp3m" in out.replace(" ", "").replace("\n", "")
    assert "(default: 500)" in out  # --batch-size
    assert "Sample" in out or "sample" in out.split("\n\n")[1]


def test_missing_cleanfid_is_one_line(tmp_path, capsys, monkeypatch):
    import numpy as np

    for name in [m for m in sys.modules if m == "cleanfid" or m.startswith("cleanfid.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cleanfid", None)  # import cleanfid -> ModuleNotFoundError
    samples, ref = tmp_path / "s.npz", tmp_path / "r.npz"
    np.savez(samples, images=np.zeros((4, 1, 8, 8), np.uint8), seeds=np.arange(4))
    np.savez(ref, mu=np.zeros(2), sigma=np.eye(2))
    code, _, err = _run(["fid", "--samples", str(samples), "--ref", str(ref), "--features", "inception",
                         "--out", str(tmp_path / "f.json")], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "pip install --no-deps clean-fid==0.1.35" in lines[0]
    assert not (tmp_path / "f.json").exists()


def test_live_curves_are_read_by_tensorboard(tmp_path, cli_env):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, logs = tmp_path / "teacher" / "model.pt", tmp_path / "runs"
    r = subprocess.run([str(VENV_BIN / "diffdistill"), "train", "teacher", "--net-kwargs",
                        '{"model_channels": 8, "num_blocks": 1}', "--iters", "40", "--batch-size", "8",
                        "--ckpt-every", "10", "--max-iters-this-run", "20", "--tensorboard-dir", str(logs),
                        "--quiet", "--out", str(out)], env=cli_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr  # stopped early on purpose, resume point kept
    acc = EventAccumulator(str(logs))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss" in tags and "lr" in tags, tags
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [10, 20] and all(e.value > 0 for e in loss)
    assert all(e.value > 0 for e in acc.Scalars("lr"))


@pytest.mark.slow
def test_wheel_works_outside_the_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    r = subprocess.run([str(VENV_BIN / "python"), "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(wheels.glob("diffdistill-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([str(VENV_BIN / "python"), "-m", "venv", "--system-site-packages", str(venv)], check=True)
    # A venv made from a venv sees the base interpreter's packages, not the project's:
    # add the project environment's site-packages (torch and the rest) after its own.
    project_site = subprocess.run([str(VENV_BIN / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip()
    own_site = subprocess.run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              capture_output=True, text=True, check=True).stdout.strip()
    (Path(own_site) / "project-env.pth").write_text(project_site + "\n")
    r = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                        str(wheel)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run([str(venv / "bin/diffdistill"), "--version"], cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"diffdistill {__version__}", r.stderr
    r = subprocess.run([str(venv / "bin/python"), "-c", "import diffdistill; print(diffdistill.__file__)"], cwd=work,
                       env=env, capture_output=True, text=True)
    assert str(venv) in r.stdout, r.stdout  # the wheel's copy, not the checkout's
    r = subprocess.run([str(venv / "bin/diffdistill"), "train", "teacher", "--net-kwargs",
                        '{"model_channels": 8, "num_blocks": 1}', "--iters", "4", "--batch-size", "8", "--quiet",
                        "--out", "teacher/model.pt"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(venv / "bin/diffdistill"), "sample", "--model", "teacher/model.pt", "--solver", "euler",
                        "--nfe", "2", "--seeds", "0-7", "--out", "s.npz", "--quiet"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and (work / "s.npz").exists(), r.stderr[-2000:]


@pytest.mark.parametrize("argv, busy, preset, expected", [
    (["train", "sfd", "--threads", "2"], 1.5, None, "PASSIVE"),
    (["train", "sfd", "--threads=2"], 1.5, None, "PASSIVE"),
    (["train", "sfd", "--threads", "2"], 0.1, None, None),     # quiet machine: OpenMP's default
    (["train", "sfd", "--threads", "1"], 1.5, None, None),     # one thread: nothing to wait for
    (["train", "sfd", "--threads", "2"], 1.5, "ACTIVE", "ACTIVE"),  # the user's value wins
])
def test_wait_policy_passive_only_for_multithreaded_jobs_on_a_busy_machine(monkeypatch, argv, busy, preset,
                                                                           expected):
    import diffdistill.__main__ as entry
    import diffdistill.cli

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    if preset:
        monkeypatch.setenv("OMP_WAIT_POLICY", preset)
    monkeypatch.setattr(sys, "argv", ["diffdistill", *argv])
    monkeypatch.setattr(entry, "others_busy_cores", lambda: busy)
    monkeypatch.setattr(diffdistill.cli, "main", lambda: 0)
    assert entry.main() == 0
    assert os.environ.get("OMP_WAIT_POLICY") == expected
