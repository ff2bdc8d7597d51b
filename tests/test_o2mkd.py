"""O2MKD: routing (each sigma to exactly one student, boundaries covered), the router
inside every solver, range splits, a KD step lowering its loss, MAC counting."""
import math

import pytest
import torch

from conftest import SCHED, assert_close_f32, build_method, save_tiny_teacher, tiny_denoiser, training_flags
from diffdistill.methods.o2mkd.train import split_boundaries
from diffdistill.nets.router import Router, router_spec
from diffdistill.precond import build_denoiser, load_denoiser, save_denoiser
from diffdistill.schedules import edm_timesteps
from diffdistill.solvers import SOLVERS, STOCHASTIC, sample


class Tagged(torch.nn.Module):
    """A fake student whose output names it: D(x; sigma) = j everywhere."""

    def __init__(self, j):
        super().__init__()
        self.j = j

    def forward(self, x, sigma):
        return torch.full_like(x, float(self.j))


@pytest.mark.parametrize("split", ["log_sigma", "rho", "steps"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_each_sigma_has_exactly_one_owner(split, n):
    b = split_boundaries(n, split, **SCHED)
    assert len(b) == n - 1 and all(0.006 < v < 80.0 for v in b)
    router = Router([Tagged(j) for j in range(n)], b)
    bt = torch.tensor(b, dtype=torch.float32)
    up, down = torch.nextafter(bt, bt * 2), torch.nextafter(bt, bt * 0)  # neighbours in float32
    sigmas = torch.cat([torch.tensor([0.0, 0.006, 80.0, 1e3]), bt, up, down,
                        torch.logspace(math.log10(0.006), math.log10(80), 500)])
    own = router.owner(sigmas)
    assert ((own >= 0) & (own < n)).all()
    # every student owns something, ownership is contiguous and descends with sigma
    order = torch.argsort(sigmas, descending=True)
    assert (own[order].diff() >= 0).all() and set(own.tolist()) == set(range(n))
    # boundaries: a sigma exactly on b_k belongs to the higher-noise student
    for k in range(n - 1):
        assert router.owner(bt[k:k + 1]).item() == k and router.owner(up[k:k + 1]).item() == k
        assert router.owner(down[k:k + 1]).item() == k + 1
    # the forward pass answers each sample from its owner only
    x = torch.zeros(len(sigmas), 1, 2, 2)
    out = router(x, sigmas)
    assert torch.equal(out[:, 0, 0, 0], own.float())


def test_rho_split_gives_each_student_about_equal_steps():
    n, b = 4, split_boundaries(4, "rho", **SCHED)
    router = Router([Tagged(j) for j in range(n)], b)
    for steps in (5, 10, 20, 40):
        ts = edm_timesteps(steps + 1, **SCHED)[:-1]  # where the steps evaluate D
        counts = torch.bincount(router.owner(ts), minlength=n)
        assert (counts - steps / n).abs().max() <= 1 and counts.sum() == steps, (steps, counts)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_router_works_in_every_solver(solver):
    """A router whose students are all the same network samples exactly like it."""
    torch.manual_seed(0)
    net = tiny_denoiser()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    router = Router([net, net, net], split_boundaries(3, "rho", **SCHED))
    ts = edm_timesteps(6, **SCHED)
    x = torch.randn(4, 1, 8, 8) * 80
    fresh = {"noise": lambda i: torch.full_like(x, 0.5)} if solver in STOCHASTIC else {}  # the re-noising sampler's
    ref = sample(net, x, ts, solver=solver, afs=False, **fresh)
    out = sample(router, x, ts, solver=solver, afs=False, **fresh)
    assert_close_f32(out, ref, ulps=128)  # sub-batches round differently


def test_router_checkpoint_roundtrip(tmp_path):
    sspec = {"net": "unet", "precond": "edm", "net_kwargs": {"img_resolution": 8, "img_channels": 1,
                                                             "model_channels": 8, "num_blocks": 1}}
    spec = router_spec(sspec, 2, split_boundaries(2, "log_sigma", **SCHED))
    r = build_denoiser(spec)
    save_denoiser(tmp_path / "r.pt", r, spec)
    r2, spec2 = load_denoiser(tmp_path / "r.pt")
    assert isinstance(r2, Router) and spec2["students"][0]["net_kwargs"]["img_resolution"] == 8
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(r(x, torch.tensor([50.0, 1.0, 0.01])), r2(x, torch.tensor([50.0, 1.0, 0.01])))


LOAD_ALONE = """
import sys, torch
from diffdistill.precond import load_checkpoint
model, ckpt = load_checkpoint(sys.argv[1])
assert not any(m.startswith("diffdistill.methods") for m in sys.modules), "a method module was imported"
x = torch.zeros(2, 1, 8, 8)
kw = {"num_steps": 4} if ckpt["spec"]["kind"] == "stepcond" else {}
print(type(model).__name__, tuple(model(x, torch.tensor([50.0, 0.01]), **kw).shape))
"""


def test_wrapped_checkpoints_load_after_importing_precond_alone(tmp_path):
    """A router and a step-conditioned checkpoint load in a fresh interpreter that imports
    only diffdistill.precond (no method module registers their kinds first)."""
    import subprocess
    import sys

    from diffdistill.nets.stepcond import step_conditioned_spec
    sspec = {"net": "unet", "precond": "edm", "net_kwargs": {"img_resolution": 8, "img_channels": 1,
                                                             "model_channels": 8, "num_blocks": 1}}
    specs = {"router": router_spec(sspec, 3, split_boundaries(3, "log_sigma", **SCHED)),
             "stepcond": step_conditioned_spec(sspec, 8, [2, 3])}
    for kind, spec in specs.items():
        save_denoiser(tmp_path / f"{kind}.pt", build_denoiser(spec), spec)
        r = subprocess.run([sys.executable, "-c", LOAD_ALONE, str(tmp_path / f"{kind}.pt")], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[0] == {"router": "Router", "stepcond": "StepConditioned"}[kind]


@pytest.mark.parametrize("kd", ["output", "output+feature"])
def test_kd_step_lowers_loss_on_fixed_batch(tmp_path, kd):
    save_tiny_teacher(tmp_path / "t.pt")
    kd_method = build_method("o2mkd", ["--teacher", tmp_path / "t.pt", "--num-students", 2, "--kd", kd,
                                       "--student-kwargs", '{"model_channels": 8}', "--batch-size", 32,
                                       "--out", tmp_path / "o.pt"])
    router = kd_method.model
    gen = torch.Generator().manual_seed(0)
    images = kd_method.images
    y, sigma, noise = images[:32], kd_method.sample_sigma(32, gen), torch.randn(32, 1, 8, 8, generator=gen)
    assert set(router.owner(sigma).tolist()) == {0, 1}
    opt = torch.optim.Adam(router.parameters(), lr=2e-3)
    before = kd_method.loss(y, sigma, noise).item()
    for _ in range(5):
        loss = kd_method.loss(y, sigma, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert kd_method.loss(y, sigma, noise).item() < before


def _unet(mc, seed=None, **kw):
    from diffdistill.nets.unet import UNet
    net = UNet(model_channels=mc, channel_mult=(1, 2), num_blocks=2, **kw)
    if seed is not None:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net


def test_channel_selection_at_full_width_is_the_teacher():
    from diffdistill.nets.unet import select_channels

    teacher = _unet(32, seed=0)
    x, labels = torch.randn(4, 1, 8, 8), torch.randn(4)
    same = _unet(32)
    picks = select_channels(teacher, same, rule="norm", order="original")
    assert all(torch.equal(p, torch.arange(len(p))) for p in picks)
    assert torch.equal(same(x, labels), teacher(x, labels))
    # the same channels ordered by norm: a permutation of whole GroupNorm groups, same function
    permuted = _unet(32)
    picks = select_channels(teacher, permuted, rule="norm", order="norm")
    assert any(not torch.equal(p, torch.arange(len(p))) for p in picks)
    for p in picks[1:]:  # groups of 4 stay whole and contiguous
        assert torch.equal(p.reshape(-1, 4) - p.reshape(-1, 4)[:, :1], torch.arange(4).expand(len(p) // 4, 4))
    assert_close_f32(permuted(x, labels), teacher(x, labels), ulps=64)


def test_channel_selection_at_half_width_keeps_the_largest_norms():
    from diffdistill.nets.unet import select_channels

    teacher = _unet(32, seed=1)
    student = _unet(16, noise_channels=32)
    picks = select_channels(teacher, student, rule="norm")
    # the embedding space: produced by map0's and map1's output rows; groups of one channel
    norms = (teacher.map0.weight.pow(2).sum(1) + teacher.map1.weight.pow(2).sum(1)).sqrt()
    expect = torch.argsort(norms, descending=True, stable=True)[:64].sort().values
    assert torch.equal(picks[0], expect)
    assert torch.equal(student.map1.weight, teacher.map1.weight[expect][:, expect])
    assert torch.equal(student.map0.weight, teacher.map0.weight[expect])
    first = select_channels(teacher, _unet(16, noise_channels=32), rule="first")
    assert all(torch.equal(p, torch.arange(len(p))) for p in first)
    assert student(torch.randn(2, 1, 8, 8), torch.randn(2)).shape == (2, 1, 8, 8)


def test_students_from_the_teacher_must_keep_its_depth():
    """Channel selection narrows the teacher; a student of another depth is one config
    line (and one UserError at the command line), not a traceback from select_channels."""
    import yaml

    from conftest import ROOT
    from diffdistill import methods
    from diffdistill.errors import UserError
    from diffdistill.nets.students import student_spec

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["teacher"]["net_kwargs"]["num_blocks"] = 1
    with pytest.raises(UserError, match="o2mkd.student_kwargs: .* num_blocks 2 differs from the teacher's 1"):
        methods.validate(cfg)
    spec = {"net": "unet", "net_kwargs": {"model_channels": 32, "channel_mult": [1, 2], "num_blocks": 1}}
    with pytest.raises(UserError, match="keeps the teacher's depth"):
        student_spec(spec, {"model_channels": 16, "channel_mult": [1, 2, 2]}, init="teacher")
    assert student_spec(spec, {"model_channels": 16}, init="teacher")["net_kwargs"]["model_channels"] == 16


@pytest.mark.parametrize("n", [1, 3])
def test_an_update_gives_every_student_a_batch_of_the_configured_size(tmp_path, n):
    """Each O2MKD update: for every student `batch_size` samples, all inside its own noise
    range (the router's owner), each student's network called once on exactly those; the
    teacher's count and images seen grow by N x batch_size."""
    save_tiny_teacher(tmp_path / "t.pt")
    m = build_method("o2mkd", ["--teacher", tmp_path / "t.pt", "--num-students", n, "--batch-size", 24,
                               "--student-kwargs", '{"model_channels": 8}', "--out", tmp_path / "o.pt"])
    m.train_model = m.model
    y, sigma, _ = m.draw_batch(torch.Generator().manual_seed(0))
    assert len(y) == len(sigma) == 24 * n
    assert torch.bincount(m.model.owner(sigma), minlength=n).tolist() == [24] * n
    seen = []
    hooks = [s.register_forward_hook(lambda mod, args, out: seen.append(len(args[0]))) for s in m.model.students]
    m.train_step(0, torch.Generator().manual_seed(0), lambda loss: loss.backward())
    for h in hooks:
        h.remove()
    assert seen == [24] * n
    assert m.counters["teacher_nfe"] == m.counters["images_seen"] == 24 * n


def test_the_study_trains_both_n_over_training_seeds_and_measures_each_recipe_once():
    """o2mkd.study: N = 1 and the claim's N, each over `train_seeds` seeds at the study's
    budget (null: 4 x o2mkd.iters), plus each EMA / LR-schedule variant on the first seed;
    each router's folder names what differs, and its training flags carry it (iterations,
    seed, recipe, curve); train_seeds 0 runs no study."""
    from types import SimpleNamespace

    from diffdistill import methods
    from diffdistill.methods.o2mkd.train import O2MKD

    cfg = methods.validate({"o2mkd": {"iters": 150, "claim_students": 3, "num_students": [1, 3]}})
    runs = O2MKD.study_runs(cfg)
    assert [r["variant"] for r in runs] == [
        "it600-N1-seed0", "it600-N1-seed1", "it600-N1-seed2", "it600-N1-ema0.999-seed0", "it600-N1-lrsstep-seed0",
        "it600-N3-seed0", "it600-N3-seed1", "it600-N3-seed2", "it600-N3-ema0.999-seed0", "it600-N3-lrsstep-seed0"]
    rows = [r for r in methods.rows(cfg) if "ablations_o2mkd_study" in r.tables]
    assert len(rows) == 10 and {r.nfe for r in rows} == {20} and {r.recipe.solver for r in rows} == {"euler"}
    assert rows[3].meta["recipe"] == "ema 0.999" and rows[0].meta["recipe"] == "config"
    files = SimpleNamespace(teacher="t.pt", ref="r.npz"), SimpleNamespace(model="m.pt", curve="c.json")
    words = training_flags("o2mkd", cfg, SimpleNamespace(variant="it600-N3-ema0.999-seed1"), *files).split()
    flag = {w: words[i + 1] for i, w in enumerate(words) if w.startswith("--") and i + 1 < len(words)}
    assert (flag["--iters"], flag["--seed"], flag["--ema"], flag["--num-students"]) == ("600", "1", "0.999", "3")
    assert (flag["--curve-every"], flag["--curve-nfe"], flag["--curve-out"]) == ("75", "20", "c.json")
    main = training_flags("o2mkd", cfg, SimpleNamespace(variant="N3"), *files)
    assert "--iters 150" in main and "--curve-every 0" in main and "--ema" not in main
    none = methods.validate({"o2mkd": {"study": {"train_seeds": 0}}})
    assert not [r for r in methods.rows(none) if "ablations_o2mkd_study" in r.tables]


def _study_record(n, seed, recipe, sets, curve):
    return {"name": f"students/o2mkd/N{n}-{recipe}-{seed}", "label": f"N={n}", "nfe": 20, "family": "o2mkd",
            "kind": "distilled", "tables": ["ablations_o2mkd_study"], "fid_inf": sum(sets) / len(sets),
            "fid_inf_sets": sets, "fid": sum(sets) / len(sets) + 5,
            "meta": {"students": n, "train_seed": seed, "recipe": recipe, "iters": 600, "curve": str(curve)}}


def test_the_claim_reads_the_study_over_its_training_seeds(tmp_path):
    """With the study's rows, 'O2MKD beats one-to-one KD' is decided over the training
    seeds (their spread widens the interval), and the ablation target writes its table
    and learning curves."""
    import numpy as np

    from diffdistill.claims_table import claims
    from diffdistill.curves import write_curve
    from diffdistill.methods import all_claims, report_parts
    from diffdistill.methods.o2mkd.report import study_groups, study_table

    curve = tmp_path / "c.json"
    write_curve(curve, [{"iteration": i, "fid": v, "wall_time": i} for i, v in [(0, 90.0), (75, 60.0), (150, 59.0)]],
                row="r", label="l", nfe=20, seeds="0-9", num_samples=10)
    shared = np.array([0.0, 1.0, -1.0, 0.5, -0.5])
    recs = []
    for seed, (kd_off, o2_off) in enumerate([(0.0, 0.3), (0.4, -0.2), (-0.3, 0.1)]):
        recs.append(_study_record(1, seed, "config", list(50 + kd_off + shared), curve))
        recs.append(_study_record(3, seed, "config", list(44 + o2_off + shared), curve))
    recs.append(_study_record(3, 0, "ema 0.999", list(43 + shared), curve))
    df, v = study_table(study_groups(recs),
                        {str(curve): {"points": [{"iteration": 0, "fid": 60.0}, {"iteration": 75, "fid": 59.0}]}})
    assert list(df["training seeds"]) == [3, 3, 1] and abs(v["d"]["diff"] - (6.0 + 0.1 / 3 - 0.2 / 3)) < 1e-9 and v["d"]["train_seeds"] == 3
    assert abs(df["curve: last gain"].iloc[0] - 1 / 60) < 1e-9
    assert abs(df["- config recipe"].iloc[2] - (43 - 44.3)) < 1e-9
    row = claims(recs, all_claims(), o2mkd_students=3).set_index("claim").loc["O2MKD beats one-to-one KD at equal cost per step"]
    assert row["verdict"] == "holds" and "3 training seeds each" in row["ours"]
    report_parts().ablation_tables["ablations_o2mkd_study"](recs, tmp_path)
    assert (tmp_path / "ablations_o2mkd_study.md").exists() and (tmp_path / "o2mkd_study.png").stat().st_size > 0

