"""Data-parallel training: 2 CPU processes (gloo) take the same steps as one process
with the same total batch, and only rank 0 writes files."""
import json
import os
import socket
import subprocess

import pytest
import torch
import torch.multiprocessing as mp

from conftest import VENV_BIN, build_method, make_cache, save_tiny_teacher

BATCH = 8


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _method(kind, tmp):
    torch.manual_seed(0)
    if kind == "teacher":
        return build_method("teacher", ["--net-kwargs", '{"model_channels": 16, "num_blocks": 1}',
                                        "--batch-size", BATCH, "--out", f"{tmp}/t.pt"])
    flags = ["--K", 2, "--pool", 32, "--seed-start", 100000, "--solver", "dpmpp3m", "--thresholding", "true"]
    return build_method("sfd", ["--teacher", f"{tmp}/teacher.pt", "--trajectories", f"{tmp}/cache.pt", "--nfe", 2,
                                "--batch-size", BATCH, "--out", f"{tmp}/s.pt", *flags])


def _run(kind, run_dir, tmp, iters=2):
    from diffdistill.runner import TrainConfig, train

    torch.set_num_threads(1)
    method = _method(kind, tmp)
    cfg = TrainConfig(iters=iters, lr=1e-3, seed=0, ckpt_every=1)
    return train(method, cfg, run_dir, progress=False, log_dir=f"{run_dir}/tb").model.state_dict()


def _worker(rank, world, port, kind, run_dir, tmp):
    import diffdistill.resume_point as resume_point

    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from diffdistill import distributed
    distributed.init_from_env()
    saves = []
    real_save = resume_point.torch_save
    resume_point.torch_save = lambda path, obj: (saves.append(str(path)), real_save(path, obj))
    state = _run(kind, run_dir, tmp)
    torch.save({"state": state, "saves": saves}, f"{run_dir}/rank{rank}.pt")


@pytest.mark.parametrize("kind", ["teacher", "sfd"])
def test_two_processes_match_one(tmp_path, kind):
    save_tiny_teacher(tmp_path / "teacher.pt")
    make_cache(tmp_path / "teacher.pt", tmp_path / "cache.pt", 2, num=32)
    single = _run(kind, tmp_path / "single", tmp_path)
    ddp_dir = tmp_path / "ddp"
    ddp_dir.mkdir()
    mp.start_processes(_worker, args=(2, _free_port(), kind, str(ddp_dir), str(tmp_path)), nprocs=2,
                       start_method="spawn")
    r0, r1 = (torch.load(ddp_dir / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # the ranks agree exactly; against one process only summation order differs, which
    # Adam's normalisation can blow up to a fraction of lr (1e-3) on near-zero gradients
    after_one = [torch.load(d / "resume.pt", weights_only=True)["model"] for d in (tmp_path / "single", ddp_dir)]
    for name, w in single.items():
        torch.testing.assert_close(after_one[1][name], after_one[0][name], rtol=0, atol=1e-5, msg=name)
        torch.testing.assert_close(r0["state"][name], w, rtol=0, atol=1e-4, msg=name)
        torch.testing.assert_close(r1["state"][name], r0["state"][name], rtol=0, atol=0)
    # the resume point (iteration 1 of 2) is written once, by rank 0, and so are the live curves
    assert r0["saves"] == [str(ddp_dir / "resume.pt")] and r1["saves"] == []
    assert len(list((ddp_dir / "tb").glob("events.out.tfevents.*"))) == 1


@pytest.mark.slow
def test_torchrun_cli_writes_once(tmp_path, cli_env):
    out = tmp_path / "teacher" / "model.pt"
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2",
           str(VENV_BIN / "diffdistill"), "train", "teacher", "--out", str(out), "--dataset", "digits",
           "--net", "unet", "--net-kwargs", '{"model_channels":8,"channel_mult":[1],"num_blocks":1}',
           "--iters", "2", "--batch-size", "8", "--ckpt-every", "1", "--threads", "1", "--quiet"]
    env = {**cli_env, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.exists() and not (out.parent / "resume.pt").exists()
    meta = json.loads(out.with_name("model.pt.meta.json").read_text())
    assert meta["iterations"] == 2 and meta["optimizer_steps"] == 2
