"""SIGKILL during training, then a rerun resumes from the last checkpoint and ends with
the same weights as an uninterrupted run."""
import json
import signal
import subprocess
import time

import torch

from conftest import VENV_BIN

ARGS = ["train", "teacher", "--iters", "40", "--ckpt-every", "5", "--batch-size", "32", "--quiet",
        "--net-kwargs", '{"model_channels": 16, "num_blocks": 1}', "--threads", "1"]


def _run(out, env, **kw):
    return subprocess.Popen([str(VENV_BIN / "diffdistill"), *ARGS, "--out", str(out)], env=env,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_then_resume(tmp_path, cli_env):
    straight = tmp_path / "a" / "model.pt"
    assert _run(straight, cli_env).wait(timeout=300) == 0

    killed = tmp_path / "b" / "model.pt"
    resume = killed.parent / "resume.pt"
    p = _run(killed, cli_env)
    deadline = time.time() + 300
    while not resume.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    assert p.poll() is None, "training finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not killed.exists(), "no final output may exist after a kill"
    ck = torch.load(resume, weights_only=True)
    at = ck["state"]["iteration"]
    assert 0 < at < 40 and at % 5 == 0

    p = _run(killed, cli_env)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert f"resuming from {resume} at iteration" in err
    meta = json.loads((killed.parent / "model.pt.meta.json").read_text())
    assert meta["resumed_from"] >= at and meta["iterations"] == 40
    assert not resume.exists()
    a = torch.load(straight, weights_only=True)["state_dict"]
    b = torch.load(killed, weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_resume_point_survives_the_deletion_of_the_output_folder(tmp_path, cli_env):
    """DVC deletes a stage's outputs before it reruns the stage: the resume point of an
    output under results/ lives in results/resume/, so a stopped run resumes even after
    its output folder was deleted."""
    import shutil

    out = tmp_path / "results" / "students" / "x" / "model.pt"
    resume = tmp_path / "results" / "resume" / "students" / "x" / "resume.pt"
    base = [str(VENV_BIN / "diffdistill"), *ARGS[:2], "--iters", "20", "--ckpt-every", "5", "--batch-size", "8",
            "--quiet", "--net-kwargs", '{"model_channels": 8, "num_blocks": 1}', "--out", str(out)]
    r = subprocess.run(base + ["--max-iters-this-run", "10"], env=cli_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3 and resume.exists() and not (out.parent / "resume.pt").exists(), r.stderr
    shutil.rmtree(tmp_path / "results" / "students")
    r = subprocess.run(base, env=cli_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and f"resuming from {resume} at iteration 10" in r.stderr, r.stderr
    assert out.exists() and not resume.exists()
