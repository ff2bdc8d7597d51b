"""SFD-v (step-conditioned student), SFD's second stage geometry, the FID-curve format."""
import json
import shutil

import pytest
import torch

from conftest import SCHED, build_method, make_cache, save_tiny_teacher, tiny_denoiser
from diffdistill.errors import UserError


def _randomise(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def test_step_embedding_at_init_leaves_student_equal_to_teacher():
    from diffdistill.nets.stepcond import from_teacher

    teacher = _randomise(tiny_denoiser()).eval()
    student = from_teacher(teacher, embed_dim=16).eval()
    x = torch.randn(6, 1, 8, 8)
    for sigma in (80.0, 3.1, 0.006):
        s = torch.full((6,), sigma)
        for n in (4, 5, 6, 7):
            assert torch.equal(student(x, s, num_steps=n), teacher(x, s))
    # the new layers are real: the first is random, so the zero layer gets a gradient
    assert student.step_map0.weight.abs().sum() > 0
    out = student(x, torch.full((6,), 3.1), num_steps=5).sum()
    out.backward()
    assert student.step_map1.weight.grad.abs().sum() > 0


def test_sfdv_step_makes_output_depend_on_step_count_and_round_trips(tmp_path):
    from diffdistill.precond import load_checkpoint
    from diffdistill.runner import TrainResult

    save_tiny_teacher(tmp_path / "t.pt")
    caches = [tmp_path / f"c{n}.pt" for n in (2, 3)]
    flags = [make_cache(tmp_path / "t.pt", c, n) for n, c in zip((2, 3), caches)][0]
    method = build_method("sfdv", ["--teacher", tmp_path / "t.pt", "--trajectories", *caches, "--nfe", 2, 3,
                                   "--embed-dim", 16, "--batch-size", 8, "--out", tmp_path / "m.pt", *flags])
    student = method.model
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)

    def opt_step(loss):
        opt.zero_grad()
        loss.backward()
        opt.step()

    seen = set()
    for it in range(6):
        seen.add(method.train_step(it, torch.Generator().manual_seed(it), opt_step)["num_steps"])
    assert seen == {4, 5}
    student.eval()
    x, s = torch.randn(3, 1, 8, 8), torch.full((3,), 2.0)
    with torch.no_grad():
        a, b = student(x, s, num_steps=4), student(x, s, num_steps=5)
    assert not torch.allclose(a, b)
    method.save(tmp_path / "m.pt", TrainResult(model=student, iterations=6, optimizer_steps=0, wall_time=0.0))
    loaded, ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt["sampling"]["nfe"] == [2, 3] and ckpt["sampling"]["step_conditioning"]
    assert torch.equal(loaded(x, s, num_steps=4), a)


def test_second_stage_teacher_grid_contains_student_timestamps():
    """The stage-1 teacher steps over 7 timestamps; the 1-NFE student's 3 timestamps are
    its points 0, 3 and 6, so K = 3 refines one into the other exactly."""
    from diffdistill.schedules import edm_timesteps, num_timestamps, refine

    student = edm_timesteps(num_timestamps(1, True), **SCHED)
    teacher = edm_timesteps(num_timestamps(5, True), **SCHED)
    assert len(student) == 3 and len(teacher) == 7
    assert torch.allclose(refine(student, 3, 7.0).double(), teacher.double(), rtol=1e-6)


def test_fid_curve_format_and_resume_keeps_points(tmp_path):
    from diffdistill.curves import FORMAT, read_curve, write_curve
    from diffdistill.runner import TrainConfig, train

    save_tiny_teacher(tmp_path / "t.pt")
    flags = make_cache(tmp_path / "t.pt", tmp_path / "c.pt", 2, num=16)
    calls = []

    def evaluate(model):
        calls.append(1)
        return {"fid": float(sum(p.abs().sum() for p in model.parameters()))}

    def run(stop=None):
        method = build_method("sfd", ["--teacher", tmp_path / "t.pt", "--trajectories", tmp_path / "c.pt",
                                      "--nfe", 2, "--batch-size", 4, "--out", tmp_path / "run/m.pt", *flags])
        cfg = TrainConfig(iters=6, lr=1e-3, eval_every=2, ckpt_every=2, max_iters_this_run=stop)
        return train(method, cfg, tmp_path / "run", progress=False, evaluate=evaluate)

    run(stop=3)  # interrupted after a checkpoint at 2
    res = run()
    assert [p["iteration"] for p in res.curve] == [0, 2, 4, 6]
    shutil.rmtree(tmp_path / "run")
    assert [p["iteration"] for p in run().curve] == [0, 2, 4, 6]  # a second fresh run in one process starts empty
    assert all(p["wall_time"] >= 0 for p in res.curve)
    assert res.curve[0]["fid"] != res.curve[-1]["fid"]
    write_curve(tmp_path / "curve.json", res.curve, row="r", label="SFD NFE 2", nfe=2, seeds="0-9", num_samples=10,
                monitor="fid", converged=False)
    d = read_curve(tmp_path / "curve.json")
    assert d["format"] == FORMAT and d["nfe"] == 2 and d["num_samples"] == 10
    assert [sorted(p) for p in d["points"]] == [["fid", "iteration", "lr", "wall_time"]] * 4
    assert [p["iteration"] for p in d["points"]] == [0, 2, 4, 6]
    bad = json.loads((tmp_path / "curve.json").read_text())
    bad["points"] = bad["points"][::-1]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(UserError, match="strictly increasing"):
        read_curve(tmp_path / "bad.json")
