"""Progressive Distillation: the closed-form target makes one student step equal two
teacher steps (last round to sigma 0 included), nested grids, one step lowers the loss."""

import pytest
import torch

from conftest import SCHED, build_method, save_tiny_teacher, tiny_denoiser
from diffdistill.methods.pd.train import pd_target, two_teacher_steps
from diffdistill.schedules import pd_timesteps
from diffdistill.solvers import euler, sample


def _randomise(model, std=0.05):
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model


def test_pd_grids_are_nested_and_end_at_zero():
    for n in (1, 2, 4, 8):
        fine, coarse = pd_timesteps(2 * n, **SCHED), pd_timesteps(n, **SCHED)
        assert len(coarse) == n + 1 and coarse[-1] == 0 and coarse[0] == 80.0
        assert torch.equal(fine[::2], coarse)
        assert (coarse[:-1] > coarse[1:]).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n_student", [1, 2, 4])
def test_target_reproduces_two_teacher_steps(dtype, n_student):
    """Plug D_tilde in as the student's denoiser: its ONE Euler step from t to t''
    equals the teacher's TWO Euler steps, for every student step (the last one lands
    on sigma = 0, where D_tilde is the two-step result itself)."""
    teacher = _randomise(tiny_denoiser()).requires_grad_(False)  # the network runs in float32; the PD algebra in `dtype`
    denoise = lambda x, t: teacher(x.float(), t.float()).to(dtype)  # noqa: E731
    ts = pd_timesteps(2 * n_student, **SCHED).to(dtype)
    x0 = torch.randn(6, 1, 8, 8, dtype=dtype, generator=torch.Generator().manual_seed(0))
    for i in range(n_student):
        t, t_mid, t_next = (torch.full((6, 1, 1, 1), float(ts[2 * i + k]), dtype=dtype) for k in range(3))
        x = x0 * t  # any state at t
        x_teacher = two_teacher_steps(denoise, x, t, t_mid, t_next)
        target = pd_target(x, t, t_next, x_teacher)
        x_student = euler(x, t, t_next, target)
        # float precision: a few ulps of the largest magnitude in the step
        scale = max(float(x.abs().max()), float(x_teacher.abs().max()), 1.0)
        tol = 16 * torch.finfo(dtype).eps
        assert ((x_student - x_teacher).abs().max() / scale) < tol, (i, t_next.flatten()[0])
        if i == n_student - 1:  # the last step lands on 0: the target is the teacher's result
            assert float(t_next.flatten()[0]) == 0.0 and torch.equal(target, x_teacher)


def test_target_as_student_runs_whole_chain_like_teacher():
    """Through the shared solver driver: a student whose denoiser is D_tilde samples
    the same images in N Euler steps as the teacher in 2N."""
    net = _randomise(tiny_denoiser())
    teacher = lambda x, t: net(x.float(), torch.as_tensor(t).float()).double()  # noqa: E731
    fine, coarse = pd_timesteps(8, **SCHED).double(), pd_timesteps(4, **SCHED).double()
    x_T = torch.randn(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 80
    ref = sample(lambda x, t: teacher(x, t), x_T, fine, solver="euler")
    lookup = {float(a): (float(b), float(c)) for a, b, c in zip(fine[:-1:2], fine[1::2], fine[2::2])}

    def student(x, t):
        t_mid, t_next = lookup[float(t)]
        col = lambda v: torch.full((x.shape[0], 1, 1, 1), v, dtype=x.dtype)  # noqa: E731
        xt = two_teacher_steps(lambda xx, tt: teacher(xx, tt), x, col(float(t)), col(t_mid), col(t_next))
        return pd_target(x, col(float(t)), col(t_next), xt)

    out = sample(student, x_T, coarse, solver="euler")
    assert torch.allclose(out, ref, atol=1e-9, rtol=1e-9)


def test_pd_step_lowers_loss_on_fixed_batch(tmp_path):
    save_tiny_teacher(tmp_path / "t.pt", std=0.03)
    pd = build_method("pd", ["--teacher", tmp_path / "t.pt", "--nfe", 2, "--batch-size", 32, "--out", tmp_path / "s.pt"])
    student = pd.model.requires_grad_(True)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    batch = pd.batch(torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    before = pd.loss(*batch).item()
    for _ in range(3):
        loss = pd.loss(*batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert pd.loss(*batch).item() < before
    # counters: two teacher evaluations per image and iteration
    pd.train_step(0, torch.Generator().manual_seed(1), lambda l: None)
    assert pd.counters["teacher_nfe"] == 64


def test_the_first_teacher_and_its_sweep_come_from_the_config():
    """PD's first teacher is DDIM at pd.n0 steps on its grid (not a fixed 16), its rounds
    start there, and pd.first_teacher_steps adds the DDIM sweep (table ablations_pd) whose
    default row is the n0 one."""
    from diffdistill import methods
    from diffdistill.methods.pd.train import ProgressiveDistillation as PD

    cfg = methods.validate({"pd": {"n0": 64, "nfe": [16, 8], "first_teacher_steps": [32, 128]}})
    rows = {r.name: r for r in methods.rows(cfg)}
    first = rows["pd-teacher/nfe64"]
    assert first.recipe.nfe == 64 and first.recipe.grid == "pd" and set(first.tables) == {"extended", "ablations_pd"}
    assert first.meta["factor"] == "default"
    assert [n for n in (32, 128) if rows[f"pd-teacher/nfe{n}"].meta["factor"] == "steps"] == [32, 128]
    assert "pd-teacher/nfe16" not in rows and PD.rounds(cfg) == [32, 16, 8]
    none = methods.validate({"pd": {"first_teacher_steps": []}})
    assert not [r for r in methods.rows(none) if "ablations_pd" in r.tables]


def test_a_sampler_ablation_has_no_training_spread_and_is_read_against_the_reference():
    from diffdistill.tables.ablation import ablation_table

    def rec(name, kind, fids, factor, tables=("ablations_pd",)):
        return {"name": name, "row": name, "label": name, "kind": kind, "nfe": 16, "family": "pd", "tables": tables,
                "fid": fids[0], "fid_inf": sum(fids) / len(fids), "fid_inf_sets": fids,
                "meta": {"factor": factor, "value": "" if factor == "default" else "32"}}

    records = [rec("ref", "reference", [10.0, 10.2, 9.9], None, ("main",)),
               rec("d16", "baseline", [30.0, 30.5, 29.8], "default"), rec("d32", "baseline", [10.1, 10.4, 9.9], "steps")]
    df, spread = ablation_table(records, "ablations_pd")
    row = df[df["value"] == "32"].iloc[0]
    assert row["significance"] == "larger than noise" and row["- default"] < 0  # paired, no training spread
    assert row["vs reference"] == "within noise" and abs(row["- reference"] - 0.1) < 1e-9
    assert df[df["factor"] == "default"].iloc[0]["vs reference"] == "larger than noise"




def test_a_rounds_curve_is_its_held_out_loss_and_samples_only_at_few_steps(tmp_path):
    """Every round's curve measures the held-out loss (the plateau rule's monitor): one
    student step against the teacher's two on fixed curve-seed pairs, the same value each
    time the same weights are measured. Rounds of at most curve_sample_steps steps also
    sample the curve seeds: their agreement with the teacher's 2N steps."""
    save_tiny_teacher(tmp_path / "t.pt")

    def evaluator(nfe, sample_steps):
        argv = ["--teacher", tmp_path / "t.pt", "--nfe", nfe, "--batch-size", 4, "--out", tmp_path / "m.pt",
                "--curve-samples", 8, "--curve-sample-steps", sample_steps]
        method = build_method("pd", argv)
        return method, method.curve_evaluator("cpu")

    method, evaluate = evaluator(4, 2)
    first, again = evaluate(method.model), evaluate(method.model)
    assert set(first) == {"val_loss"} and first == again and first["val_loss"] > 0
    method, evaluate = evaluator(2, 2)
    assert set(evaluate(method.model)) == {"val_loss", "rmse"}
