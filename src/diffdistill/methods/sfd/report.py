"""SFD's claims (the claims table, `diffdistill.claims_table`): SFD against the
training-free samplers and, by the equal-quality benchmark, against PD; its ablations
(AFS, the loss, t_min, K, the teacher's solver); and ours, the teacher's lower-order
final steps. Imported by `Method.claims` only (planning reads no numpy or pandas)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ... import stats
from ...claims import Claim, beats_or_matches, better, each_better, exact, faster
from ...records import Q

if TYPE_CHECKING:
    from ...claims_table import Data

# -- the papers' effects on our scale ------------------------------------------------------
# A paper's effect is a fraction of a row it shares with ours (the teacher, a training-free
# sampler); the same fraction of our row is the effect on our scale. Only the papers'
# numbers enter the fractions.
EDM_TEACHER = 1.97  # EDM's CIFAR-10 teacher at 35 NFE, SFD's (METHODS: the papers' student/teacher ratio)
SFD_2, DPMPP3M_5 = 4.53, 24.97  # SFD at NFE 2 and DPM-Solver++(3M) at NFE 5, SFD's table
PROTO_FORCE, PROTO_DPM, PROTO_TEACHER = 1.95, 6.37, 2.10  # the digits prototype's FDs (lower order forced / not)


def _carry_sfd_vs_solvers(d: "Data", values: dict | None) -> float:
    """The paper's smallest gap (SFD at NFE 2 against DPM-Solver++(3M) at NFE 5) as a
    fraction of that sampler's excess over the teacher, times our sampler's excess over
    our reference."""
    row = d.by_name.get("teacher-dpmpp3m-afs/nfe5") or d.by_name.get("teacher-dpmpp3m/nfe5")
    if row is None or d.ref is None:
        return float("nan")
    return (DPMPP3M_5 - SFD_2) / (DPMPP3M_5 - EDM_TEACHER) * (row[Q] - d.ref[Q])


def _carry_final_step(d: "Data", values: dict | None) -> float:
    """The prototype's gain from forced lower-order final steps as a fraction of its
    teacher's FD, times our reference's FID at infinite n."""
    return (PROTO_DPM - PROTO_FORCE) / PROTO_TEACHER * d.ref[Q] if d.ref is not None else float("nan")


# -- our measurements -----------------------------------------------------------------

def _ablation(factor: str, value: str):
    def ours(d: Data):
        row, default = d.abl.get((factor, value)), d.abl.get(("default", ""))
        if row is None or default is None:
            return None
        return (f"FID inf {row['FID inf']:.2f} vs default {default['FID inf']:.2f}: {stats.fmt(row['_paired'])}",
                {"d": row["_paired"], "scale": default["FID inf"]})
    ours.reads = (factor, value)  # the ablation rows it needs (the workflow builds them with the claims)
    return ours


def _best_tested(factor: str):
    def ours(d: Data):
        others = [(v, row) for (f, v), row in d.abl.items() if f == factor]
        default = d.abl.get(("default", ""))
        if not others or default is None:
            return None
        text = "; ".join(f"{v}: {stats.fmt(row['_paired'])}" for v, row in others)
        return (f"FID inf minus the default's ({default['FID inf']:.2f}): {text}",
                {"ds": [r["_paired"] for _, r in others]})
    ours.reads = (factor, None)  # every value
    return ours


def _sfd_vs_solvers(d: Data):
    """SFD at NFE k against every training-free sampler at every NFE from k to 5, each
    pair paired: the sampler minus SFD, positive when SFD is better."""
    sfd = d.rows("sfd")
    base = [r for r in d.table_rows if r.get("kind") == "baseline" and r.get("family") == "teacher"]
    pairs = [(k, r) for k in sorted(sfd) if 2 <= k <= 5 for r in base if k <= r["nfe"] <= 5]
    if not pairs:
        return None
    ds = [stats.paired_rows(r, sfd[k]) for k, r in pairs]
    worst = min(range(len(pairs)), key=lambda i: ds[i]["diff"])
    k, r = pairs[worst]
    return (f"{len(pairs)} pairs (SFD at NFE k against {len(base) // max(1, len({b['nfe'] for b in base}))} "
            f"training-free samplers at NFE k..5); the closest: {r['label']} NFE {r['nfe']} (FID inf {r[Q]:.2f}) "
            f"minus SFD NFE {k} ({sfd[k][Q]:.2f}): {stats.fmt(ds[worst])}", {"ds": ds})


def _benchmark(d: Data):
    """results/benchmark-runs/equal_compute.json: PD's time to SFD's final NFE-2 FID over SFD's
    (a lower bound when PD's whole chain stops short of it), and the other direction."""
    b = d.benchmark
    if b is None or b.get("ratio") is None:
        return None
    sfd_to = b.get("sfd_to_pd_quality", {})
    if b.get("ratio_is_lower_bound"):
        first = (f"PD does not reach SFD's NFE-2 FID {b['target_fid']:.1f} within {b['pd_total_seconds']:.0f} s "
                 f"(SFD: {b['sfd_seconds']:.0f} s): PD / SFD > x{b['ratio']:.1f}")
    else:
        first = f"PD / SFD wall clock to SFD's NFE-2 FID {b['target_fid']:.1f}: x{b['ratio']:.1f}"
    second = ""
    if sfd_to.get("reached") and sfd_to.get("time / other method time"):
        speedup = 1 / sfd_to["time / other method time"]
        second = f"; SFD reaches PD's final FID {sfd_to['target FID']:.1f} x{speedup:.1f} faster than PD"
    boot = b.get("bootstrap") or {}
    values = {"ratio": b["ratio"], "lower_bound": bool(b.get("ratio_is_lower_bound")), "exact": False}
    if boot.get("reps"):
        values |= {k: boot[k] for k in ("p_faster", "p_not_faster", "lower_5", "upper_95", "reps")}
    return first + second + f" (FID {b.get('fid_scale', 'at the curve n')}; results/benchmark-runs)", values


CLAIMS = [
    Claim("SFD beats training-free sampling at equal or higher NFE, up to NFE 5",
          "SFD NFE 2/3/4/5: 4.53/3.58/3.24/3.06 vs DPM-Solver++(3M) NFE 5: 24.97 (CIFAR-10); beyond NFE 5 the "
          "training-free samplers win (DPM-Solver++(3M) NFE 10: 3.00)",
          "every training-free sampler at every NFE j in k..5 minus SFD at NFE k (k = 2..5), paired, > 0",
          each_better, {"ds": [exact(DPMPP3M_5 - x) for x in (SFD_2, 3.58, 3.24, 3.06)]}, _sfd_vs_solvers,
          carry=_carry_sfd_vs_solvers, order=10),
    Claim("SFD fine-tunes far faster than PD at equal quality", "0.64 A100 h (SFD, NFE 2: 4.53) vs ~171 h (PD, NFE 2: "
          "4.51): ~267x", "PD / SFD wall clock to the same NFE-2 FID; holds above 2x", faster,
          {"ratio": 171 / 0.64, "exact": True}, _benchmark, test_kind="none", order=20),
    Claim("AFS helps", "Table 1 / Figure 4 ablation (numbers unverified)",
          "FID inf without AFS minus with AFS, paired (training noise of both models included), > 0", better, None,
          _ablation("AFS", "False"), order=30),
    Claim("L1 beats or matches L2", "Figure 4: best with L1 (numbers unverified)",
          "FID inf(L2) - FID inf(L1) > 0 (beats), or within ±10 % of the default's FID inf by two one-sided "
          "tests (matches; the margin fixed before any run)", beats_or_matches(0.10), None, _ablation("loss", "l2"),
          order=40),
    Claim("t_min = 0.006 is the best tested value", "Figure 5: t_min ablation (numbers unverified)",
          "every other t_min minus 0.006, paired, > 0", each_better, None,
          _best_tested("t_min"), order=50),
    Claim("K = 4 (M = 3) is the best tested value", "Table 1: K = 1..6 (numbers unverified)",
          "every other K minus K = 4, paired, > 0", each_better, None,
          _best_tested("K (teacher steps per student step)"), order=60),
    Claim("The DPM-Solver++(3M) teacher beats Euler", "Figure 4 (numbers unverified)",
          "FID inf(Euler teacher) - FID inf(3M teacher), paired, > 0", better, None,
          _ablation("teacher solver", "euler"), order=70),
    Claim("Ours: the teacher's lower-order final steps matter", "a digits prototype: forced lower order 1.95 vs "
          "DPM-Solver convention 6.37", "FID inf(final step 'dpm') - FID inf('force'), paired, > 0", better,
          {"d": exact(PROTO_DPM - PROTO_FORCE)}, _ablation("teacher final step", "dpm"), carry=_carry_final_step,
          order=120),
]
