"""The equal-compute benchmark (python -m benchmarks.equal_compute) on made-up curves:
the costs before a run (caches, the chain of teachers), SFD against PD at equal quality
both ways on cumulative fine-tuning seconds, "not reached" when a chain stops short, the
budgets, and the claims table reading it."""
import json
from pathlib import Path

import pytest


def _pts(points, offset=0.0):
    return [{"iteration": i, "seconds": offset + t, "fid": f, "teacher_nfe": 0, "optimizer_steps": i}
            for i, (t, f) in enumerate(points)]


def test_both_directions_on_cumulative_seconds():
    # SFD: cache 10 s, then FID 200 -> 40 -> 20 at 0, 20, 40 s. PD: earlier rounds 100 s, then 80 -> 30 -> 15.
    from benchmarks.equal_compute import sfd_vs_pd

    b = sfd_vs_pd(_pts([(0, 200.0), (20, 40.0), (40, 20.0)], 10.0), _pts([(0, 80.0), (50, 30.0), (100, 15.0)], 100.0),
                  reps=10)
    pd_to, sfd_to = b["pd_to_sfd_quality"], b["sfd_to_pd_quality"]
    # PD reaches SFD's final 20 between 150 s (30) and 200 s (15): 150 + 10/15 * 50
    assert pd_to["reached"] and pd_to["s to target"] == pytest.approx(150 + 50 * 10 / 15)
    assert b["sfd_seconds"] == pytest.approx(50.0)  # SFD's own time to its final FID, cache included
    assert b["ratio"] == pytest.approx((150 + 50 * 10 / 15) / 50) and not b["ratio_is_lower_bound"]
    assert not sfd_to["reached"]  # SFD never reaches PD's final 15


def test_a_pd_chain_that_stops_short_gives_a_lower_bound_and_the_claim_reads_it():
    from benchmarks.equal_compute import sfd_vs_pd

    b = sfd_vs_pd(_pts([(0, 200.0), (20, 40.0), (40, 20.0)], 10.0), _pts([(0, 90.0), (50, 60.0), (100, 45.0)], 100.0),
                  reps=10)
    assert not b["pd_to_sfd_quality"]["reached"] and b["ratio_is_lower_bound"]
    assert b["ratio"] == pytest.approx(200 / 50)  # PD's whole chain over SFD's time to its final FID
    sfd_to = b["sfd_to_pd_quality"]  # SFD reaches PD's final 45 between 10 s (200) and 30 s (40)
    assert sfd_to["reached"] and sfd_to["s to target"] == pytest.approx(10 + 20 * 155 / 160)
    assert sfd_to["other method s to target"] == pytest.approx(200.0)
    from diffdistill.claims import decide, faster
    from diffdistill.claims_table import Data
    from diffdistill.methods.sfd.report import _benchmark
    d = Data.__new__(Data)
    d.benchmark = b
    text, values = _benchmark(d)
    assert "does not reach" in text
    assert {k: values[k] for k in ("ratio", "lower_bound", "exact")} == {"ratio": pytest.approx(4.0),
                                                                       "lower_bound": True, "exact": False}
    # three points per curve are too few to read their noise from: no bootstrap, no p for Holm's family
    assert b["bootstrap"]["reps"] == 0 and "p_faster" not in values
    assert decide(faster(values)).startswith("holds")
    assert decide(faster({"ratio": 1.5, "lower_bound": True})).startswith("inconclusive")


def _meta(path, **m):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    (path.parent / (path.name + ".meta.json")).write_text(json.dumps(m))
    return str(path)


def test_a_runs_cost_counts_its_caches_and_its_teachers_chain(tmp_path):
    """Seconds, teacher NFE and optimizer steps before a run's first iteration: the caches it
    reads and every student up its chain of teachers (a PD round's earlier rounds), not the
    trained teacher."""
    from benchmarks.equal_compute import before_run, chain_cost, on_axis

    teacher = _meta(tmp_path / "teacher.pt", method="teacher", wall_time=1000.0)
    cache = _meta(tmp_path / "traj.pt", wall_time=10.0, teacher_nfe=500)
    r4 = _meta(tmp_path / "r4.pt", method="pd", wall_time=30.0, optimizer_steps=300, teacher_nfe=6000,
               args={"teacher": teacher})
    assert chain_cost(r4) == {"seconds": 30.0, "teacher_nfe": 6000, "optimizer_steps": 300}
    sfd = {"method": "sfd", "wall_time": 40.0, "optimizer_steps": 100, "teacher_nfe": 500, "iterations": 50,
           "args": {"teacher": teacher, "trajectories": cache}}
    assert before_run(sfd) == {"seconds": 10.0, "teacher_nfe": 500, "optimizer_steps": 0}
    r2 = {"method": "pd", "wall_time": 20.0, "optimizer_steps": 200, "teacher_nfe": 4000, "iterations": 200,
          "args": {"teacher": r4}}
    assert before_run(r2) == {"seconds": 30.0, "teacher_nfe": 6000, "optimizer_steps": 300}
    model = Path(_meta(tmp_path / "r2/model.pt", **r2))
    (model.parent / "fid_curve.json").write_text(json.dumps({"format": "diffdistill-curve/2", "row": "r2", "label": "r2", "nfe": 2, "num_samples": 250, "points": [
        {"iteration": 0, "wall_time": 0.0, "fid": 60.0}, {"iteration": 200, "wall_time": 20.0, "fid": 50.0}]}))
    pts = on_axis(model, "fid", 2500.0, before_run(r2))
    assert [(p["seconds"], p["teacher_nfe"], p["optimizer_steps"], p["fid"]) for p in pts] == [
        (30.0, 6000, 300, 50.0), (50.0, 10000, 500, 40.0)]


def _curve(start, seconds, level, noise, rng, n=30):
    """A falling FID curve: level + (start - level) e^(-5 s / seconds), with noise
    multiplicative in FID (log-normal, sd `noise`)."""
    import math

    ts = [seconds * i / (n - 1) for i in range(n)]
    return [{"iteration": i, "seconds": t, "fid": (level + (start - level) * math.exp(-5 * t / seconds))
             * math.exp(noise * rng.standard_normal())} for i, t in enumerate(ts)]


def test_the_equal_quality_ratio_carries_the_curves_noise_and_the_claim_tests_it():
    """The bootstrap's interval holds the ratio of the noise-free curves; a PD chain ten
    times slower gives 'holds' (p of 'at most 2x' small); two equally fast methods do not
    (p near or above 0.05), and the claim says the interval."""
    import numpy as np

    from benchmarks.equal_compute import bootstrap
    from diffdistill.claims import decide, faster

    rng = np.random.default_rng(0)
    sfd = _curve(200.0, 100.0, 10.0, 0.03, rng)
    slow = _curve(200.0, 1000.0, 9.0, 0.03, rng)  # reaches SFD's final level at about ten times its time
    b = bootstrap(sfd, slow, reps=400)
    assert b["reps"] == 400 and 2 < b["lower_5"] <= b["upper_95"]
    assert b["p_faster"] < 0.05 <= b["p_not_faster"]
    t = faster({**b, "ratio": 10.0, "lower_bound": False, "exact": False})
    assert decide(t) == "holds" and "90 % interval" in t.notes[0]
    same = _curve(200.0, 100.0, 9.5, 0.03, rng)
    e = bootstrap(sfd, same, reps=400)
    assert e["lower_5"] < 2 and e["p_faster"] > 0.05
    assert decide(faster({**e, "ratio": 1.0, "lower_bound": False, "exact": False})) != "holds"


def test_budgets_read_the_best_point_so_far_and_a_level_not_reached_is_none():
    from benchmarks.equal_compute import best_within, time_to

    pts = _pts([(0, 50.0), (10, 30.0), (20, 35.0), (40, 25.0)])
    assert best_within(pts, 5) == 50.0 and best_within(pts, 25) == 30.0 and best_within(pts, 100) == 25.0
    assert time_to(pts, 40.0) == pytest.approx(5.0) and time_to(pts, 10.0) is None


def test_a_finished_run_is_reused_only_for_the_same_arguments():
    """Run settings (threads, output paths) aside, a changed argument trains again."""
    from benchmarks.equal_compute import command, run_args

    meta = {"method": "sfd", "args": {"teacher": "t.pt", "iters": 100, "lr": 3e-4, "threads": 1, "out": "a/model.pt",
                                      "quiet": False, "curve_out": "a/fid_curve.json"}}
    done = {"method": "sfd", "args": {**meta["args"], "lr": 1e-4, "threads": 2, "out": "b/model.pt"}}
    assert run_args(done) == run_args(meta, 1e-4)
    assert run_args({**done, "args": {**done["args"], "iters": 200}}) != run_args(meta, 1e-4)
    assert run_args(done) != run_args(meta, 1e-4, teacher="other.pt")
    cmd = command(meta, Path("x"), 1e-4, 2)
    assert cmd[cmd.index("--lr") + 1] == "0.0001" and cmd[cmd.index("--threads") + 1] == "2"
    assert cmd[cmd.index("--out") + 1] == "x/model.pt" and "--restart" not in cmd


def test_at_a_budget_the_curve_is_read_where_it_stands_not_at_its_luckiest_point():
    from benchmarks.equal_compute import at_budget

    sfd = _pts([(t, 10.0 + (0.3 if i % 2 else -0.3)) for i, t in enumerate(range(0, 120, 10))])
    other = _pts([(t, 14.0 - t / 20 + (0.3 if i % 2 else -0.3)) for i, t in enumerate(range(0, 120, 10))])
    s = at_budget(sfd, other, 60.0, 2.0, 9.0)
    # the other curve's running mean at 60 s is about 11, SFD ends near 10: about -1, not its minimum's
    assert s["diff"] == pytest.approx(10.0 - 11.0, abs=0.2) and 0 <= s["p"] <= 1
    # one seed set's spread of the difference is in the SE, not only the curves' point noise
    assert 2.0 < s["se"] < 2.1 and s["df"] == 9.0
    assert at_budget(sfd, other, -1.0, 2.0, 9.0) is None and at_budget(sfd, other, 60.0, float("nan"), 0) is None


def test_a_seed_sets_spread_of_the_difference_is_scaled_to_the_curves_n():
    from benchmarks.equal_compute import set_spread

    a = {"fid_inf_sets": [1.0, 3.0, 2.0, 4.0], "num_samples": 300}
    b = {"fid_inf_sets": [0.0, 1.0, 1.0, 1.0], "num_samples": 300}
    sd, df = set_spread(a, b, 75)  # differences 1, 2, 1, 3: sd 0.957; 300 / 75 = 4 times the variance
    assert sd == pytest.approx(0.9574271 * 2) and df == 3
    assert set_spread(a, None, 75)[0] != set_spread(a, None, 75)[0]
