"""benchmarks/gpu_check.py in its CPU mode (--device cpu --tiny): the code paths of the GPU
check at toy size, so the script cannot rot between GPU runs. It measures; the test only
checks that every measurement is there and that its own checks passed."""
import json
import subprocess

from conftest import ROOT, VENV_BIN


def test_cpu_mode_runs_every_part(tmp_path, cli_env):
    r = subprocess.run([str(VENV_BIN / "python"), "-m", "benchmarks.gpu_check", "--device", "cpu", "--tiny",
                        "--cores", "1", "--out", str(tmp_path / "out")], cwd=tmp_path, env={**cli_env, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "out/gpu_check.json").read_text())
    measures = [row["measure"] for row in report["rows"]]
    for part in ("smoke DAG", "fp32", "bf16 autocast", "sampling NFE 2", "sampling NFE 35", "Inception features",
                 "DDP gradients"):
        assert any(part in m for m in measures), (part, measures)
    assert report["smoke_ok"] and report["ddp"]["match"] and report["ddp"]["max relative difference"] < 1e-5
    assert all(row["seconds"] > 0 for row in report["rows"][:-1])
    md = (tmp_path / "out/gpu_check.md").read_text()
    assert report["device_name"] in md and "0.64 A100-hours" in md


def test_cuda_without_a_gpu_is_one_line(tmp_path, cli_env):
    import torch
    if torch.cuda.is_available():
        return
    r = subprocess.run([str(VENV_BIN / "python"), "-m", "benchmarks.gpu_check", "--device", "cuda",
                        "--out", str(tmp_path / "out")], cwd=tmp_path, env={**cli_env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no CUDA" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
