"""The plateau rule (diffdistill.convergence) on synthetic curves carrying the measured
curve noise, the runner following it, and the curve seeds' place among the seed spaces."""
import numpy as np
import pytest

from diffdistill.convergence import CONTINUE, DECAY, STOP, Plateau, decide, relative_gain

# Point-to-point noise of each validation curve, relative to its level: the residual sd of
# linear fits over sliding windows of `window` points (what the rule sees), measured on the
# digits default. rmse: SFD's agreement with its target (a point every 20 iterations,
# after iteration 200), 0.0015 / 0.0028 / 0.0035 / 0.0046 at NFE 2 / 3 / 4 / 5 in one
# fresh-clone run, the median taken; val_loss: PD's held-out loss (round 64, a point every
# 25 iterations, after iteration 100), 0.04-0.08; fid: ECT's NFE-2 FID on the curve seeds
# (250 samples, a point every 50 iterations, after iteration 100), 0.023-0.048, median 0.040.
NOISE = {"rmse": 0.003, "val_loss": 0.06, "fid": 0.04}


def default_convergence():
    """The convergence section of the default config."""
    import yaml
    from pathlib import Path
    return yaml.safe_load((Path(__file__).resolve().parents[1] / "config/config.yaml").read_text())["convergence"]


def tolerances():
    """convergence.tol of the default config, per monitored value."""
    return default_convergence()["tol"]


WINDOW = default_convergence()["window"]


MONITORS = sorted(NOISE)


def rule_for(monitor):
    return Plateau(window=WINDOW, tol=tolerances()[monitor])


def run_rule(curve, rule):
    """Feed the rule one point at a time as the runner does; (action, index) of every
    decay and of the stop."""
    events, start, decays = [], 0, 0
    for k in range(len(curve)):
        action = decide(curve[start:k + 1], decays, rule)
        if action == DECAY:
            events.append((DECAY, k))
            decays, start = decays + 1, k  # the point at the change opens the new window
        elif action == STOP:
            events.append((STOP, k))
            break
    return events


def noisy(levels, rng, noise):
    levels = np.asarray(levels, float)
    return levels * (1 + noise * rng.standard_normal(len(levels)))


@pytest.mark.parametrize("monitor", MONITORS)
def test_each_default_tolerance_resolves_its_curves_noise(monitor):
    """Each tolerance sits between a flat curve and one falling by 2 SE per point, more
    than three standard errors of the window's slope from both."""
    x = np.arange(WINDOW)
    slope_se = NOISE[monitor] / np.sqrt(((x - x.mean()) ** 2).sum())
    tol = tolerances()[monitor]
    assert tol > 3 * slope_se and 2 * NOISE[monitor] - tol > 3 * slope_se


@pytest.mark.parametrize("monitor", MONITORS)
def test_a_flat_curve_stops_within_two_windows_and_decays_first(monitor):
    """On a flat curve the rate is lowered as soon as one window is full and training
    stops one window later (the point at the decay opens it): at the latest at point
    2 * window - 1, the decay first, in at least 99 % of 300 simulated curves."""
    rng, late = np.random.default_rng(0), 0
    for _ in range(300):
        events = run_rule(noisy(np.full(60, 0.08), rng, NOISE[monitor]), rule_for(monitor))
        assert [e[0] for e in events] == [DECAY, STOP]
        late += events[1][1] > 2 * WINDOW - 2  # 0-based index of the (2W-1)-th point
    assert late <= 3


@pytest.mark.parametrize("monitor", MONITORS)
def test_a_curve_falling_by_two_standard_errors_per_point_never_stops(monitor):
    """Falling by 2 SE per point (relative to its level), the curve is never taken for a
    plateau: no decay, no stop, over 300 simulated curves of 60 points."""
    rng = np.random.default_rng(1)
    for _ in range(300):
        levels = 0.08 * (1 - 2 * NOISE[monitor]) ** np.arange(60)
        assert run_rule(noisy(levels, rng, NOISE[monitor]), rule_for(monitor)) == []


@pytest.mark.parametrize("monitor", MONITORS)
def test_a_curve_that_flattens_stops_after_it_flattens(monitor):
    """A curve that falls steeply, then flattens: the decay comes after the bend, the stop
    after the decay."""
    rng = np.random.default_rng(2)
    bend = 20
    for _ in range(100):
        levels = np.concatenate([0.2 * 0.8 ** np.arange(bend), np.full(40, 0.2 * 0.8 ** bend)])
        events = run_rule(noisy(levels, rng, NOISE[monitor]), rule_for(monitor))
        assert [e[0] for e in events] == [DECAY, STOP]
        assert events[0][1] >= bend - 1


def test_relative_gain_is_the_slope_over_the_level():
    assert relative_gain([1.0, 0.9, 0.8]) == pytest.approx(0.1 / 0.9)
    assert relative_gain([2.0, 2.0, 2.0]) == pytest.approx(0.0, abs=1e-12)
    assert decide([1.0, 1.0], 0, Plateau()) == CONTINUE  # fewer points than the window


def test_relative_gain_matches_numpys_least_squares_and_refuses_a_diverged_curve():
    from diffdistill.errors import UserError

    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.normal(1.0, 0.1, int(rng.integers(3, 12)))
        want = -np.polyfit(np.arange(len(v)), v, 1)[0] / abs(v.mean())
        assert relative_gain(v) == pytest.approx(want, rel=1e-9, abs=1e-12)
    with pytest.raises(UserError, match="not finite"):
        relative_gain([1.0, 0.9, float("nan"), 0.8])


def test_the_runner_lowers_the_rate_then_stops_complete(tmp_path):
    """The runner follows the rule: the learning rate drops tenfold at the first plateau,
    the next plateau ends training complete (converged, exit 0) before `iters`; the curve
    points carry the rate they were measured under."""
    from conftest import build_method, save_tiny_teacher
    from diffdistill.runner import TrainConfig, train

    save_tiny_teacher(tmp_path / "t.pt")
    values = iter([1.0, 0.5, 0.3] + [0.2] * 20)
    method = build_method("pd", ["--teacher", tmp_path / "t.pt", "--nfe", 2, "--batch-size", 4,
                                 "--out", tmp_path / "m.pt"])
    cfg = TrainConfig(iters=100, lr=1e-3, lr_schedule="plateau", eval_every=2, ckpt_every=2, monitor="v",
                      plateau=Plateau(window=3, tol=0.01))
    res = train(method, cfg, tmp_path, progress=False, evaluate=lambda model: {"v": next(values)})
    lrs = [p["lr"] for p in res.curve]
    assert res.converged and res.decays == 1 and res.iterations < 100
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)
    assert [p["v"] for p in res.curve] == [1.0, 0.5, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2]


def test_curve_seeds_never_overlap_the_evaluation_seeds_or_the_trajectory_pool():
    """The default config's curve seeds are disjoint from the evaluation seed sets, from
    the largest trajectory pool and from the seeds of fresh trajectories; a config that makes them overlap is refused, naming both."""
    import yaml

    from diffdistill import methods
    from diffdistill.errors import UserError

    cfg = methods.validate(yaml.safe_load(open("config/config.yaml")))
    for cache in (True, False):  # without a cache: also the range fresh trajectories draw from
        spaces = list(methods.seed_spaces({**cfg, "trajectories": {**cfg["trajectories"], "cache": cache}}).values())
        assert len(spaces) == 4 - cache
        for i, a in enumerate(spaces):
            for b in spaces[i + 1:]:
                assert a.stop <= b.start or b.stop <= a.start, (a, b)
    with pytest.raises(UserError, match="curve seeds .* overlap|overlap the curve seeds"):
        methods.validate({**cfg, "convergence": {**cfg["convergence"], "seed_start": 10}})
    with pytest.raises(UserError, match="overlap"):
        methods.validate({**cfg, "convergence": {**cfg["convergence"], "seed_start": cfg["trajectories"]["seed_start"]}})


def test_the_runner_exports_the_best_curve_point_and_a_resume_keeps_it(tmp_path):
    """Under the plateau rule the exported weights are the best monitored point's: a curve
    that turns up after its minimum exports the weights measured there (their first
    parameter is recorded with each point), also across a stop and resume."""
    import torch

    from conftest import build_method, save_tiny_teacher
    from diffdistill.runner import TrainConfig, train

    save_tiny_teacher(tmp_path / "t.pt")
    curve = [1.0, 0.5, 0.2, 0.25, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
    seen = {}

    def run(max_iters):
        method = build_method("pd", ["--teacher", tmp_path / "t.pt", "--nfe", 2, "--batch-size", 4,
                                     "--out", tmp_path / "m.pt"])
        cfg = TrainConfig(iters=100, lr=1e-2, lr_schedule="plateau", eval_every=2, ckpt_every=2, monitor="v",
                          plateau=Plateau(window=3, tol=0.01), max_iters_this_run=max_iters)

        def evaluate(model):
            it = len(seen)
            seen[it] = next(iter(model.parameters())).detach().clone()
            return {"v": curve[it]}
        return train(method, cfg, tmp_path / "run", progress=False, evaluate=evaluate)

    first = run(5)  # stopped on purpose just after the best point (iteration 4, the 3rd point)
    assert not first.converged
    res = run(None)  # the best weights come back from the resume point
    assert res.converged and res.best_iteration == 4 and res.iterations > 6
    assert torch.equal(next(iter(res.model.parameters())), seen[2])
    assert not torch.equal(seen[2], seen[len(seen) - 1])


def test_a_rerun_replaces_its_own_event_file_and_a_resume_continues_it(tmp_path):
    """TensorBoard: a fresh rerun into the same folder leaves one event file (its own, the
    old one removed); another program's file there is left alone; a resumed run adds
    its file and keeps the earlier one (the resume point purges what follows it)."""
    pytest.importorskip("tensorboard")
    from conftest import build_method, save_tiny_teacher
    from diffdistill.runner import TrainConfig, train

    save_tiny_teacher(tmp_path / "t.pt")
    logs = tmp_path / "runs"
    logs.mkdir()
    (logs / "events.out.tfevents.someone-else").write_text("x")

    def run(restart, max_iters=None):
        method = build_method("pd", ["--teacher", tmp_path / "t.pt", "--nfe", 2, "--batch-size", 4,
                                     "--out", tmp_path / "m.pt"])
        cfg = TrainConfig(iters=6, lr=1e-3, eval_every=2, ckpt_every=2, max_iters_this_run=max_iters)
        train(method, cfg, tmp_path / "run", progress=False, evaluate=lambda m: {"v": 1.0}, restart=restart,
              log_dir=logs)
        return sorted(p.name for p in logs.glob("events.out.tfevents.*") if "someone-else" not in p.name)

    first = run(True)
    second = run(True)
    assert len(first) == 1 and len(second) == 1 and first != second
    assert (logs / "events.out.tfevents.someone-else").exists()
    stopped = run(True, max_iters=3)
    resumed = run(False)
    assert len(stopped) == 1 and len(resumed) == 2 and stopped[0] in resumed
