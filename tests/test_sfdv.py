"""SFD-v (step-conditioned student), SFD's second stage geometry, the FID-curve format."""
import json

import pytest
import torch

from conftest import tiny_denoiser
from diffdistill.io import UserError


def _randomise(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def test_step_embedding_at_init_leaves_student_equal_to_teacher():
    from diffdistill.distill.sfdv import from_teacher

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
    from diffdistill.distill.sfd import SFD
    from diffdistill.distill.sfdv import SFDV, from_teacher, step_conditioned_spec
    from diffdistill.precond import load_denoiser, save_denoiser
    from diffdistill.schedules import edm_timesteps
    from diffdistill.trajectories import TrajectoryBatches

    teacher = _randomise(tiny_denoiser())
    student = from_teacher(teacher, embed_dim=16)
    per = {}
    for n in (4, 5):
        ts = edm_timesteps(n, 0.006, 80.0, 7.0)
        states = torch.randn(8, n, 1, 8, 8) * ts.view(1, -1, 1, 1, 1).float().clamp(max=1)
        per[n] = SFD(student, TrajectoryBatches(states=states), ts, 8)
    method = SFDV(student, per)
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
    spec = step_conditioned_spec({"net": "unet", "precond": "edm", "net_kwargs": {
        "img_resolution": 8, "img_channels": 1, "model_channels": 16, "channel_mult": [1, 2], "num_blocks": 1}},
        16, [2, 3])
    save_denoiser(tmp_path / "m.pt", student, spec)
    loaded, _ = load_denoiser(tmp_path / "m.pt")
    loaded.num_steps = 4
    assert torch.equal(loaded(x, s), a)


def test_second_stage_teacher_grid_contains_student_timestamps():
    """The stage-1 teacher steps over 7 timestamps; the 1-NFE student's 3 timestamps are
    its points 0, 3 and 6, so K = 3 refines one into the other exactly."""
    from diffdistill.schedules import edm_timesteps, num_timestamps, refine

    student = edm_timesteps(num_timestamps(1, True), 0.006, 80.0, 7.0)
    teacher = edm_timesteps(num_timestamps(5, True), 0.006, 80.0, 7.0)
    assert len(student) == 3 and len(teacher) == 7
    assert torch.allclose(refine(student, 3, 7.0).double(), teacher.double(), rtol=1e-6)


def test_fid_curve_format_and_resume_keeps_points(tmp_path):
    from diffdistill.curves import FORMAT, read_curve, write_curve
    from diffdistill.distill.sfd import SFD
    from diffdistill.distill.trainer import TrainConfig, train
    from diffdistill.schedules import edm_timesteps
    from diffdistill.trajectories import TrajectoryBatches

    ts = edm_timesteps(4, 0.006, 80.0, 7.0)
    states = torch.randn(16, 4, 1, 8, 8)
    calls = []

    def evaluate(model):
        calls.append(1)
        return float(sum(p.abs().sum() for p in model.parameters()))

    def run(stop=None):
        method = SFD(_randomise(tiny_denoiser()), TrajectoryBatches(states=states), ts, 4)
        cfg = TrainConfig(iters=6, lr=1e-3, eval_every=2, ckpt_every=2, max_iters_this_run=stop)
        return train(method, cfg, tmp_path / "run", progress=False, evaluate=evaluate)

    run(stop=3)  # interrupted after a checkpoint at 2
    res = run()
    assert [p["iteration"] for p in res.curve] == [0, 2, 4, 6]
    assert all(p["wall_time"] >= 0 for p in res.curve)
    assert res.curve[0]["value"] != res.curve[-1]["value"]
    write_curve(tmp_path / "curve.json", res.curve, row="r", label="SFD NFE 2", nfe=2, seeds="0-9", num_samples=10)
    d = read_curve(tmp_path / "curve.json")
    assert d["format"] == FORMAT and d["nfe"] == 2 and d["num_samples"] == 10
    assert [sorted(p) for p in d["points"]] == [["fid", "iteration", "wall_time"]] * 4
    assert [p["iteration"] for p in d["points"]] == [0, 2, 4, 6]
    bad = json.loads((tmp_path / "curve.json").read_text())
    bad["points"] = bad["points"][::-1]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(UserError, match="strictly increasing"):
        read_curve(tmp_path / "bad.json")
