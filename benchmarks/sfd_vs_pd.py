"""SFD against PD at equal quality: training seconds each method needs to reach the other's NFE-2 FID.

From the FID-during-training curves (the same curve seeds for both): the training wall
clock each method needs to reach the worse of the two final NFE-2 FIDs, and the ratio.
PD's time counts every earlier round (its cumulative wall clock) plus the NFE-2 round's
time to the target; SFD's counts the building of its trajectory cache (the teacher's
work) plus its own time to the target. Crossings are interpolated linearly between
curve points.

    python -m benchmarks.sfd_vs_pd --sfd results/students/sfd/default/nfe2 \\
        --pd results/students/pd/default/nfe2 --out results/benchmark-runs
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import run, write

from diffdistill.curves import read_curve
from diffdistill.io import read_meta
from diffdistill.report import cache_seconds


def time_to(points: list[dict], target: float) -> float | None:
    """Training seconds at which the curve first reaches `target` (linear between points)."""
    for a, b in zip(points, points[1:]):
        if b["fid"] <= target < a["fid"]:
            return a["wall_time"] + (a["fid"] - target) / (a["fid"] - b["fid"]) * (b["wall_time"] - a["wall_time"])
    return points[0]["wall_time"] if points and points[0]["fid"] <= target else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sfd", required=True, help="folder of the SFD NFE-2 student (model.pt, fid_curve.json)")
    ap.add_argument("--pd", required=True, help="folder of the PD NFE-2 student")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sfd, pd = (read_curve(Path(f) / "fid_curve.json")["points"] for f in (a.sfd, a.pd))
    pd_meta = read_meta(Path(a.pd) / "model.pt")
    earlier = pd_meta["cumulative_wall_time"] - pd_meta["wall_time"]
    if len(pd) < 2:
        write(a.out, "sfd_vs_pd", "SFD against PD at equal quality", {
            "ratio": None, "note": "PD logged no FID curve (set pd.curve_every > 0)",
            "headline": "not measured: PD logged no FID curve"}, [])
        return
    target = max(sfd[-1]["fid"], pd[-1]["fid"])
    t_sfd, t_pd = time_to(sfd, target), time_to(pd, target)
    cache = cache_seconds(read_meta(Path(a.sfd) / "model.pt")) or 0.0
    t_sfd = None if t_sfd is None else cache + t_sfd
    t_pd = None if t_pd is None else earlier + t_pd
    ratio = t_pd / t_sfd if t_sfd and t_pd else None
    rows = [{"method": "SFD (NFE 2, trajectory cache included)", "final FID (curve seeds)": sfd[-1]["fid"],
             "s to target": t_sfd},
            {"method": "PD (NFE 2, all rounds)", "final FID (curve seeds)": pd[-1]["fid"], "s to target": t_pd}]
    head = (f"PD / SFD wall clock to FID {target:.1f} (the worse final NFE-2 FID, far from the papers' ~4.5): "
            f"x{ratio:.1f} (papers: ~267x)" if ratio else
            "the target was not reached on a curve")
    write(a.out, "sfd_vs_pd", "SFD against PD at equal quality", {
        "target_fid": target, "sfd_seconds": t_sfd, "sfd_cache_seconds": cache, "pd_seconds": t_pd,
        "pd_earlier_rounds_seconds": earlier,
        "ratio": ratio, "headline": head, "paper_ratio": 267,
        "note": ("equal quality here is the worse of the two final FIDs, far from the papers' FID near 4.5; the "
                 "papers' anchor is about 267x (0.64 against about 171 A100-hours)")}, rows,
        "Equal quality here is the worse of the two final NFE-2 FIDs (curve seeds), far from the papers' FID near "
        "4.5 on CIFAR-10; the papers' anchor is about 267x (0.64 against about 171 A100-hours). PD at this "
        "budget stops far above SFD's quality, so the ratio measures how fast SFD reaches PD's final quality.")


if __name__ == "__main__":
    run(main)
