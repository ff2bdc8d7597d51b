"""SFD against PD at equal quality, both ways: training seconds each needs to reach the other's final NFE-2 FID.

From the FID-during-training curves (the same curve seeds for both), on cumulative
fine-tuning seconds: SFD's time counts the building of its trajectory cache (the
teacher's work) before its first iteration; PD's counts every earlier round before its
NFE-2 round. Two crossings: the time PD needs to reach SFD's final NFE-2 FID (or "not
reached within" PD's whole chain), and the time SFD needs to reach PD's final NFE-2 FID;
their ratios to the other method's time to the same FID; and a figure of FID against
cumulative fine-tuning seconds, one line per method (sfd_vs_pd.png). Crossings are
interpolated linearly between curve points.

The curves' FID is at the curve's n. With each row's metrics file (`--sfd-fid`,
`--pd-fid`), every point is brought to infinite n on the sample side: the row's fitted
bias slope over the curve's n is subtracted (the reference side's bias is one constant
for both curves, so it moves no crossing; the curve's n may lie below the sizes the
slope was fitted on, where the bias grows faster than 1/n: an approximation). The
ratio's uncertainty: a parametric bootstrap of the curves' point noise (each curve's
running mean plus Gaussian noise of the spread its last half shows around it), both
crossings recomputed per draw; it leaves out the spread between training runs.

    python -m benchmarks.sfd_vs_pd --sfd results/students/sfd/default/nfe2 \\
        --pd results/students/pd/default/nfe2 --out results/benchmark-runs
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .common import run, write

from diffdistill.curves import read_curve
from diffdistill.provenance import read_meta
from diffdistill.tables.cost import cache_seconds


def time_to(points: list[dict], target: float) -> float | None:
    """Seconds at which the curve first reaches `target` (linear between points; points
    carry `fid` and `seconds`)."""
    if points and points[0]["fid"] <= target:
        return points[0]["seconds"]
    for a, b in zip(points, points[1:]):
        if b["fid"] <= target < a["fid"]:
            return a["seconds"] + (a["fid"] - target) / (a["fid"] - b["fid"]) * (b["seconds"] - a["seconds"])
    return None


def on_cumulative_seconds(points: list[dict], offset: float) -> list[dict]:
    """A curve's points on cumulative fine-tuning seconds: `offset` (the work before the
    curve's first iteration) plus its own wall time; the start (iteration 0) at `offset`."""
    return [{"iteration": p["iteration"], "fid": p["fid"], "seconds": offset + p["wall_time"]} for p in points]


def to_infinite_n(points: list[dict], slope: float, n: int) -> list[dict]:
    """Curve points with the sample side's FID bias (slope / n, the row's fitted 1/n
    slope) removed."""
    return [{**p, "fid": p["fid"] - slope / n} for p in points]


MIN_TAIL = 5  # residuals a curve's noise is read from; fewer: no spread measured


def _smooth_and_noise(points: list[dict]) -> tuple[np.ndarray, float]:
    """A curve's running mean of three (two at the ends) and the spread of its points
    around it over the curve's last half, where the crossings lie (an interior
    residual has variance 2/3 of the points' own, an end one 1/2); NaN with fewer than
    MIN_TAIL residuals. In FID, not log FID: at infinite n a point may sit at or below 0."""
    y = np.array([p["fid"] for p in points], float)
    smooth = np.array([y[max(0, i - 1):i + 2].mean() for i in range(len(y))])
    share = np.array([0.5 if i in (0, len(y) - 1) else 2 / 3 for i in range(len(y))])
    k = len(y) // 2
    tail = ((y - smooth) ** 2 / share)[k:]
    return smooth, float(math.sqrt(tail.mean())) if len(tail) >= MIN_TAIL else float("nan")


def bootstrap(sfd: list[dict], pd: list[dict], reps: int = 2000, seed: int = 0, bound: float = 2.0) -> dict:
    """PD's time to SFD's final FID over SFD's, over `reps` draws of both curves' point
    noise (jitter around each curve's running mean: not the spread between training
    runs, nor the fitted bias slope's own error, so the interval is a lower limit on
    the uncertainty). A draw where PD never gets there counts at its lower bound (PD's
    whole chain); one where SFD starts at its final FID (no time to it) is left out and
    counted (`sfd_at_start`). Returns the 5 % and 95 % points (the latter None,
    unbounded, where over 5 % of draws are such lower bounds), the share of draws at or
    below `bound` (the one-sided p of 'faster than bound') and the share at or above it
    (that of 'not faster'; a lower bound below it counts there too); `reps` 0 where a
    curve has too few points to read its noise from."""
    rng = np.random.default_rng(seed)
    (s_mu, s_sd), (p_mu, p_sd) = _smooth_and_noise(sfd), _smooth_and_noise(pd)
    if s_sd != s_sd or p_sd != p_sd:
        return {"reps": 0, "note": f"a curve has fewer than {2 * MIN_TAIL} points: no noise measured"}
    ratios, censored, at_start = [], [], 0
    for _ in range(reps):
        s_draw = [{**p, "fid": float(m + s_sd * e)} for p, m, e in zip(sfd, s_mu, rng.standard_normal(len(sfd)))]
        p_draw = [{**p, "fid": float(m + p_sd * e)} for p, m, e in zip(pd, p_mu, rng.standard_normal(len(pd)))]
        target = s_draw[-1]["fid"]
        t_sfd, t_pd = time_to(s_draw, target), time_to(p_draw, target)
        if not t_sfd:
            at_start += 1
            continue
        ratios.append((t_pd if t_pd is not None else p_draw[-1]["seconds"]) / t_sfd)
        censored.append(t_pd is None)
    if not ratios:
        return {"reps": 0, "sfd_at_start": at_start, "note": "SFD's curve starts at its final FID in every draw"}
    r, c = np.array(ratios), np.array(censored, bool)
    upper = float(np.sort(np.where(c, np.inf, r))[int(math.ceil(0.95 * len(r))) - 1])
    return {"reps": len(r), "lower_5": float(np.quantile(r, 0.05)), "upper_95": upper if upper < math.inf else None,
            "p_faster": float(np.mean(r <= bound)), "p_not_faster": float(np.mean((r >= bound) | (c & (r < bound)))),
            "censored_share": float(c.mean()), "sfd_at_start": at_start, "noise_sd": {"sfd": s_sd, "pd": p_sd}}


def crossing(name: str, target_of: str, target: float, mine: list[dict], theirs: list[dict]) -> dict:
    """The seconds `mine` needs to reach `target` (the other method's final FID) against
    the seconds `theirs` needed for it; not reached: the time `mine` ran in all."""
    t_mine, t_theirs = time_to(mine, target), time_to(theirs, target)
    return {"method": name, "target": f"{target_of}'s final FID", "target FID": target,
            "s to target": t_mine, "reached": t_mine is not None, "s run in all": mine[-1]["seconds"],
            "other method s to target": t_theirs,
            "time / other method time": (t_mine / t_theirs) if t_mine is not None and t_theirs else None}


def plot(curves: dict[str, list[dict]], out: Path, scale: str = "at the curve's n") -> None:
    """FID (curve seeds) against cumulative fine-tuning seconds, one line per method."""
    from diffdistill.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in curves.items():
        ax.plot([p["seconds"] for p in pts], [p["fid"] for p in pts], marker="o", label=name)
    ax.set_xlabel("cumulative fine-tuning seconds (SFD: cache included; PD: earlier rounds included)")
    ax.set_ylabel(f"FID at NFE 2 (curve seeds; {scale})")
    if all(p["fid"] > 0 for pts in curves.values() for p in pts):
        ax.set_yscale("log")
    ax.legend()
    save_figure(fig, out, "sfd_vs_pd")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sfd", required=True, help="folder of the SFD NFE-2 student (model.pt, fid_curve.json)")
    ap.add_argument("--pd", required=True, help="folder of the PD NFE-2 student")
    ap.add_argument("--sfd-fid", help="the SFD row's metrics file (fid.json): curves at infinite n")
    ap.add_argument("--pd-fid", help="the PD row's metrics file")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap draws of the curves' noise")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    curves = [read_curve(Path(f) / "fid_curve.json") for f in (a.sfd, a.pd)]
    sfd_raw, pd_raw = (c["points"] for c in curves)
    scale = "at the curve's n"
    if a.sfd_fid and a.pd_fid:
        from diffdistill.files import read_json_object

        slopes = [read_json_object(f, ("fid_bias_slope_n",), "metrics file")["fid_bias_slope_n"]
                  for f in (a.sfd_fid, a.pd_fid)]
        sfd_raw, pd_raw = (to_infinite_n(p, b, c["num_samples"]) for p, b, c in zip((sfd_raw, pd_raw), slopes, curves))
        scale = "at infinite n (sample side)"
    if len(pd_raw) < 2 or len(sfd_raw) < 2:
        write(a.out, "sfd_vs_pd", "SFD against PD at equal quality", {
            "ratio": None, "note": "a method logged no FID curve (set sfd.curve_every and pd.curve_every > 0)",
            "headline": "not measured: no FID curve"}, [])
        return
    pd_meta = read_meta(Path(a.pd) / "model.pt")
    earlier = pd_meta["cumulative_wall_time"] - pd_meta["wall_time"]
    cache = cache_seconds(read_meta(Path(a.sfd) / "model.pt")) or 0.0
    sfd, pd = on_cumulative_seconds(sfd_raw, cache), on_cumulative_seconds(pd_raw, earlier)
    pd_to_sfd = crossing("PD (all rounds)", "SFD", sfd[-1]["fid"], pd, sfd)
    sfd_to_pd = crossing("SFD (cache included)", "PD", pd[-1]["fid"], sfd, pd)
    # the claim's ratio: PD's time to SFD's final quality over SFD's; PD short of it: a lower bound
    t_sfd = pd_to_sfd["other method s to target"]
    if pd_to_sfd["reached"]:
        ratio, bound = pd_to_sfd["time / other method time"], False
        first = (f"PD reaches SFD's final NFE-2 FID {sfd[-1]['fid']:.1f} in {pd_to_sfd['s to target']:.0f} s, "
                 f"x{ratio:.1f} SFD's {t_sfd:.0f} s")
    else:
        ratio, bound = pd[-1]["seconds"] / t_sfd, True
        first = (f"PD does not reach SFD's final NFE-2 FID {sfd[-1]['fid']:.1f} within {pd[-1]['seconds']:.0f} s "
                 f"(its whole chain; SFD: {t_sfd:.0f} s): PD / SFD > x{ratio:.1f}")
    if sfd_to_pd["reached"] and sfd_to_pd["time / other method time"]:
        second = (f"SFD reaches PD's final FID {pd[-1]['fid']:.1f} in {sfd_to_pd['s to target']:.0f} s against "
                  f"PD's {sfd_to_pd['other method s to target']:.0f} s")
    else:
        second = f"SFD does not reach PD's final FID {pd[-1]['fid']:.1f}"
    boot = bootstrap(sfd, pd, reps=a.reps)
    spread = boot.get("note", "")
    if boot["reps"]:
        upper = "unbounded" if boot["upper_95"] is None else f"x{boot['upper_95']:.1f}"
        spread = f"PD / SFD 90 % interval x{boot['lower_5']:.1f} .. {upper} over {boot['reps']} draws of the curves' noise"
    head = f"{first}; {second} (papers: ~267x at FID ~4.5); {spread}; FID {scale}"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:  # the figure appears whole or not at all
        plot({"SFD, NFE 2": sfd, "PD, NFE-2 round": pd}, Path(tmp), scale)
        for ext in ("png", "pdf"):
            os.replace(Path(tmp) / f"sfd_vs_pd.{ext}", out / f"sfd_vs_pd.{ext}")
    write(a.out, "sfd_vs_pd", "SFD against PD at equal quality, both ways", {
        "ratio": ratio, "ratio_is_lower_bound": bound, "target_fid": sfd[-1]["fid"], "sfd_seconds": t_sfd,
        "sfd_cache_seconds": cache, "pd_earlier_rounds_seconds": earlier, "pd_total_seconds": pd[-1]["seconds"],
        "pd_to_sfd_quality": pd_to_sfd, "sfd_to_pd_quality": sfd_to_pd, "curves": {"sfd": sfd, "pd": pd},
        "headline": head, "paper_ratio": 267, "figure": "sfd_vs_pd.png", "bootstrap": boot, "fid_scale": scale},
        [pd_to_sfd, sfd_to_pd],
        "Seconds are cumulative fine-tuning seconds: SFD's trajectory cache is built before its first iteration, "
        "PD's earlier rounds run before its NFE-2 round. The papers' anchor is about 267x (0.64 against about 171 "
        "A100-hours, both near FID 4.5 on CIFAR-10). Figure: sfd_vs_pd.png.")


if __name__ == "__main__":
    run(main)
