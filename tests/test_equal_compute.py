"""The SFD-against-PD benchmark (python -m benchmarks.sfd_vs_pd) on made-up curves:
both directions of equal quality on cumulative fine-tuning seconds (SFD's cache and
PD's earlier rounds counted), "not reached" when a chain stops short, its figure, and
the claims table reading it."""
import json
import subprocess

import pytest

from conftest import ROOT, VENV_BIN


def _student(folder, points, meta):
    folder.mkdir(parents=True)
    curve = {"format": "diffdistill-fid-curve/1", "row": folder.name, "label": folder.name, "nfe": 2,
             "points": [{"iteration": i, "fid": f, "wall_time": t} for i, (t, f) in enumerate(points)]}
    (folder / "fid_curve.json").write_text(json.dumps(curve))
    (folder / "model.pt.meta.json").write_text(json.dumps(meta))


def _run(tmp_path, cli_env, pd_points):
    cache = tmp_path / "traj.pt"
    (tmp_path / "traj.pt.meta.json").write_text(json.dumps({"wall_time": 10.0}))
    _student(tmp_path / "sfd", [(0, 200.0), (20, 40.0), (40, 20.0)],
             {"wall_time": 40.0, "args": {"trajectories": str(cache)}})
    _student(tmp_path / "pd", pd_points, {"wall_time": pd_points[-1][0], "cumulative_wall_time": 100 + pd_points[-1][0]})
    r = subprocess.run([str(VENV_BIN / "python"), "-m", "benchmarks.sfd_vs_pd", "--sfd", str(tmp_path / "sfd"),
                        "--pd", str(tmp_path / "pd"), "--out", str(tmp_path / "out")], cwd=tmp_path,
                       env={**cli_env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "out/sfd_vs_pd.png").stat().st_size > 0
    return json.loads((tmp_path / "out/sfd_vs_pd.json").read_text())


def test_both_directions_on_cumulative_seconds(tmp_path, cli_env):
    # SFD: cache 10 s, then FID 200 -> 40 -> 20 at 0, 20, 40 s. PD: earlier rounds 100 s, then 80 -> 30 -> 15.
    b = _run(tmp_path, cli_env, [(0, 80.0), (50, 30.0), (100, 15.0)])
    pd_to, sfd_to = b["pd_to_sfd_quality"], b["sfd_to_pd_quality"]
    # PD reaches SFD's final 20 between 150 s (30) and 200 s (15): 150 + 10/15 * 50
    assert pd_to["reached"] and pd_to["s to target"] == pytest.approx(150 + 50 * 10 / 15)
    assert b["sfd_seconds"] == pytest.approx(50.0)  # SFD's own time to its final FID, cache included
    assert b["ratio"] == pytest.approx((150 + 50 * 10 / 15) / 50) and not b["ratio_is_lower_bound"]
    # SFD never reaches PD's final 15
    assert not sfd_to["reached"]


def test_a_pd_chain_that_stops_short_gives_a_lower_bound_and_the_claim_reads_it(tmp_path, cli_env):
    b = _run(tmp_path, cli_env, [(0, 90.0), (50, 60.0), (100, 45.0)])
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

    from benchmarks.sfd_vs_pd import bootstrap
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


def test_curves_at_infinite_n_subtract_the_rows_own_bias():
    from benchmarks.sfd_vs_pd import to_infinite_n

    pts = [{"iteration": 0, "fid": 50.0, "wall_time": 0.0}, {"iteration": 1, "fid": 30.0, "wall_time": 1.0}]
    assert [p["fid"] for p in to_infinite_n(pts, 2500.0, 250)] == [40.0, 20.0]
