"""SFD against PD at equal quality, both ways: training seconds each needs to reach the other's final NFE-2 FID.

From the FID-during-training curves (the same curve seeds for both), on cumulative
fine-tuning seconds: SFD's time counts the building of its trajectory cache (the
teacher's work) before its first iteration; PD's counts every earlier round before its
NFE-2 round. Two crossings: the time PD needs to reach SFD's final NFE-2 FID (or "not
reached within" PD's whole chain), and the time SFD needs to reach PD's final NFE-2 FID;
their ratios to the other method's time to the same FID; and a figure of FID against
cumulative fine-tuning seconds, one line per method (sfd_vs_pd.png). Crossings are
interpolated linearly between curve points.

    python -m benchmarks.sfd_vs_pd --sfd results/students/sfd/default/nfe2 \\
        --pd results/students/pd/default/nfe2 --out results/benchmark-runs
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from .common import run, write

from diffdistill.curves import read_curve
from diffdistill.io import read_meta
from diffdistill.report import cache_seconds


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


def crossing(name: str, target_of: str, target: float, mine: list[dict], theirs: list[dict]) -> dict:
    """The seconds `mine` needs to reach `target` (the other method's final FID) against
    the seconds `theirs` needed for it; not reached: the time `mine` ran in all."""
    t_mine, t_theirs = time_to(mine, target), time_to(theirs, target)
    return {"method": name, "target": f"{target_of}'s final FID", "target FID": target,
            "s to target": t_mine, "reached": t_mine is not None, "s run in all": mine[-1]["seconds"],
            "other method s to target": t_theirs,
            "time / other method time": (t_mine / t_theirs) if t_mine is not None and t_theirs else None}


def plot(curves: dict[str, list[dict]], out: Path) -> None:
    """FID (curve seeds) against cumulative fine-tuning seconds, one line per method."""
    from diffdistill.figures import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in curves.items():
        ax.plot([p["seconds"] for p in pts], [p["fid"] for p in pts], marker="o", label=name)
    ax.set_xlabel("cumulative fine-tuning seconds (SFD: cache included; PD: earlier rounds included)")
    ax.set_ylabel("FID at NFE 2 (curve seeds)")
    ax.set_yscale("log")
    ax.legend()
    _save(fig, out, "sfd_vs_pd")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sfd", required=True, help="folder of the SFD NFE-2 student (model.pt, fid_curve.json)")
    ap.add_argument("--pd", required=True, help="folder of the PD NFE-2 student")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sfd_raw, pd_raw = (read_curve(Path(f) / "fid_curve.json")["points"] for f in (a.sfd, a.pd))
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
    head = f"{first}; {second} (papers: ~267x at FID ~4.5)"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:  # the figure appears whole or not at all
        plot({"SFD, NFE 2": sfd, "PD, NFE-2 round": pd}, Path(tmp))
        for ext in ("png", "pdf"):
            os.replace(Path(tmp) / f"sfd_vs_pd.{ext}", out / f"sfd_vs_pd.{ext}")
    write(a.out, "sfd_vs_pd", "SFD against PD at equal quality, both ways", {
        "ratio": ratio, "ratio_is_lower_bound": bound, "target_fid": sfd[-1]["fid"], "sfd_seconds": t_sfd,
        "sfd_cache_seconds": cache, "pd_earlier_rounds_seconds": earlier, "pd_total_seconds": pd[-1]["seconds"],
        "pd_to_sfd_quality": pd_to_sfd, "sfd_to_pd_quality": sfd_to_pd, "curves": {"sfd": sfd, "pd": pd},
        "headline": head, "paper_ratio": 267, "figure": "sfd_vs_pd.png"}, [pd_to_sfd, sfd_to_pd],
        "Seconds are cumulative fine-tuning seconds: SFD's trajectory cache is built before its first iteration, "
        "PD's earlier rounds run before its NFE-2 round. The papers' anchor is about 267x (0.64 against about 171 "
        "A100-hours, both near FID 4.5 on CIFAR-10). Figure: sfd_vs_pd.png.")


if __name__ == "__main__":
    run(main)
