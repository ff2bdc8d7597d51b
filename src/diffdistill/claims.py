"""The papers' claims against our measurements: one row per claim, stated as the paper
states it, with the paper's own numbers as evidence, the rule that decides it, our
measurement and a verdict.

Every rule reads bias-free quantities (FID at infinite n) and, for our rows, paired
statistics over the seed sets every row shares (`diffdistill.stats`): a difference is
decided by a paired t-test (5 %, two-sided), a closeness or equivalence claim by a
one-sided test or two one-sided tests against a stated margin, a ratio by its standard
error. The same rule applied to the paper's own numbers (exact values: no spread) must
give *holds* (tests/test_claims.py); a rule the paper would fail is a wrong rule.
*not measured*: our measurement is missing (a claim never holds by default)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import stats
from .io import atomic_dir, read_json_object
from .report import Q, ablation_table, in_table, load_records, reference, values, write_table

RULE = ("Verdicts: differences are paired over the evaluation seed sets (Student's t, two-sided 5 %; the "
        "default's training-seed spread added where two trained models are compared); a bound on a ratio of FIDs "
        "at infinite n is a one-sided 5 % test with the ratio's standard error; an equivalence is two one-sided "
        "tests against the margin stated. *holds*: significant in the paper's direction or within its bound; "
        "*does not hold*: significant the other way or beyond it; *inconclusive*: neither; *not measured*: "
        "missing. Each rule gives *holds* on the paper's own numbers (its evidence column).")
NOT_MEASURED = ("not measured", "not measured")
O2MKD_STUDY = "ablations_o2mkd_study"  # the O2MKD study's rows (learning curves, training seeds)
CONFIG_RECIPE = "config"               # a study router trained with the config's recipe


def exact(diff: float) -> dict:
    """A paper's difference as a stats.paired result: exact, no spread."""
    return {"diff": diff, "se": 0.0, "df": math.inf, "t": math.copysign(math.inf, diff) if diff else 0.0,
            "p": 0.0 if diff else 1.0, "detectable": 0.0, "sets": 1}


@dataclass(frozen=True)
class Claim:
    claim: str            # as the paper states it
    evidence: str         # the paper's numbers
    rule: str             # the metric and the threshold, in words
    decide: Callable      # decide(evidence values) -> verdict, for the paper's numbers and for ours
    paper: dict | None    # the paper's numbers in decide's form (None: not published)
    ours: Callable        # ours(data) -> (text, values) or None


class Data:
    """The records the claims read, by role."""

    def __init__(self, records: list[dict], benchmark: str | None = None, o2mkd_students: int = 3):
        # the rows of the main and the extended tables (PD's chain, SFD-v and the second stage are in the latter)
        self.records, self.table_rows = records, in_table(records, ("main", "extended"))
        self.ref = reference(self.table_rows)
        self.abl = {}
        if any("ablations" in r.get("tables", ()) for r in records):
            df, _ = ablation_table(records, "ablations")
            self.abl = {(row["factor"], row["value"]): row for row in df.to_dict("records")}
        self.benchmark = read_json_object(benchmark, (), "benchmark file") if benchmark and Path(benchmark).exists() \
            else None
        self.o2mkd_students = o2mkd_students

    def rows(self, family: str, kind: str = "distilled") -> dict:
        return {r["nfe"]: r for r in self.table_rows if r.get("family") == family and r.get("kind") == kind}


# -- rules: one per kind of claim; each takes the values the paper and we both give ---------

def better(v: dict) -> str:
    """v = {"d": paired difference, worse minus better in the paper's direction}."""
    return stats.direction(v["d"], +1)


def at_most(bound: float) -> Callable:
    return lambda v: stats.at_most(v["ratio"], v.get("se", 0.0), v.get("df", math.inf), bound)


def each_better(v: dict) -> str:
    """v = {"ds": [paired differences, each other value minus the claimed best]}."""
    verdicts = [stats.direction(d, +1) for d in v["ds"]]
    if any(x == "does not hold" for x in verdicts):
        return "does not hold"
    return "holds" if verdicts and all(x == "holds" for x in verdicts) else "inconclusive"


def beats_or_matches(margin: float) -> Callable:
    """Better (significantly), or equivalent within `margin` (TOST); worse beyond it: not."""
    def decide(v):
        if stats.direction(v["d"], +1) == "holds":
            return "holds"
        eq = stats.equivalent(v["d"], margin * v["scale"])
        if eq == "holds":
            return "holds"
        return "does not hold" if stats.direction(v["d"], +1) == "does not hold" and eq == "does not hold" \
            else "inconclusive"
    return decide


def faster(v: dict) -> str:
    """Above 2x holds, below 0.5x does not; a lower bound (the slower method never got
    there) decides only when it is above 2x."""
    if v.get("lower_bound"):
        return "holds" if v["ratio"] > 2 else "inconclusive"
    return "holds" if v["ratio"] > 2 else "does not hold" if v["ratio"] < 0.5 else "inconclusive"


def rounds_lose_little(bound: float, down_to: int) -> Callable:
    """Every halving round that ends at `down_to` steps or more: FID ratio to its teacher
    at most `bound`."""
    def decide(v):
        kept = [r for r in v["rounds"] if r["to"] >= down_to]
        if not kept:
            return "not measured"
        verdicts = [stats.at_most(r["ratio"], r.get("se", 0.0), r.get("df", math.inf), bound) for r in kept]
        if any(x == "does not hold" for x in verdicts):
            return "does not hold"
        return "holds" if all(x == "holds" for x in verdicts) else "inconclusive"
    return decide


# -- our measurements -----------------------------------------------------------------

def _pm(s: dict) -> str:
    return stats.fmt(s)


def _ablation(factor: str, value: str):
    def ours(d: Data):
        row, default = d.abl.get((factor, value)), d.abl.get(("default", ""))
        if row is None or default is None:
            return None
        return (f"FID inf {row['FID inf']:.2f} vs default {default['FID inf']:.2f}: {_pm(row['_paired'])}",
                {"d": row["_paired"], "scale": default["FID inf"]})
    return ours


def _best_tested(factor: str):
    def ours(d: Data):
        others = [(v, row) for (f, v), row in d.abl.items() if f == factor]
        default = d.abl.get(("default", ""))
        if not others or default is None:
            return None
        text = "; ".join(f"{v}: {_pm(row['_paired'])}" for v, row in others)
        return f"FID inf minus the default's ({default['FID inf']:.2f}): {text}", {"ds": [r["_paired"] for _, r in others]}
    return ours


def _sfd_vs_solvers(d: Data):
    sfd = d.rows("sfd").get(2)
    base = [r for r in d.table_rows if r.get("kind") == "baseline" and r["nfe"] == 2 and r.get("family") == "teacher"]
    if sfd is None or not base:
        return None
    best = min(base, key=lambda r: r[Q])
    s = stats.paired_rows(best, sfd)
    return (f"best training-free sampler at NFE 2 ({best['label']}, FID inf {best[Q]:.2f}) minus SFD NFE 2 "
            f"({sfd[Q]:.2f}): {_pm(s)}", {"d": s})


def _ratio_rows(num: dict, den: dict, nfes) -> dict | None:
    pairs = [(num[n], den[n]) for n in nfes if n in num and n in den]
    if not pairs:
        return None
    rs = [stats.ratio(values(a), values(b)) for a, b in pairs]
    k = min(len(values(a)) for a, _ in pairs)
    return {"ratio": float(np.mean([r for r, _ in rs])), "se": math.sqrt(sum(s ** 2 for _, s in rs)) / len(rs),
            "df": k - 1, "per": rs}


def _sfdv(d: Data):
    sfd, sfdv = d.rows("sfd"), d.rows("sfdv")
    v = _ratio_rows(sfdv, sfd, sorted(set(sfd) & set(sfdv)))
    if v is None:
        return None
    per = ", ".join(f"{r:.2f}" for r, _ in v["per"])
    return f"SFD-v / SFD, FID inf, mean over NFE: {v['ratio']:.2f} ± {v['se']:.2f} ({per})", v


def _second_stage(d: Data):
    one_step = d.rows("sfd2").get(1)
    v = _ratio_rows({2: one_step} if one_step else {}, d.rows("sfd"), [2])  # stage 2 at NFE 1 / SFD at NFE 2
    if v is None:
        return None
    return f"stage 2 at NFE 1 / SFD at NFE 2, FID inf: {v['ratio']:.2f} ± {v['se']:.2f}", v


def _pd_rounds(d: Data):
    pd_rows, first = d.rows("pd"), d.rows("pd", "baseline")
    if not pd_rows or not first:
        return None
    chain = sorted(first.items(), reverse=True)[:1] + sorted(pd_rows.items(), reverse=True)
    rounds = []
    for (a, ra), (b, rb) in zip(chain, chain[1:]):
        if a == 2 * b:
            r, se = stats.ratio(values(rb), values(ra))
            rounds.append({"from": a, "to": b, "ratio": r, "se": se, "df": len(values(rb)) - 1})
    text = ", ".join(f"{x['from']}->{x['to']} steps: x{x['ratio']:.2f} ± {x['se']:.2f}" for x in rounds)
    return f"FID inf ratio of each round to its teacher: {text}", {"rounds": rounds}


def study_groups(records: list[dict]) -> dict:
    """The O2MKD study's records by router: {(N, recipe): [records, by training seed]},
    the config's recipe first."""
    groups: dict = {}
    for r in sorted(in_table(records, O2MKD_STUDY), key=lambda r: r["meta"]["train_seed"]):
        groups.setdefault((r["meta"]["students"], r["meta"]["recipe"]), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][1] != CONFIG_RECIPE, kv[0])))


def study_difference(groups: dict, students: int) -> dict | None:
    """One-to-one KD minus O2MKD with `students` students, both with the config's recipe,
    over their training seeds (`stats.paired_over_seeds`); None when either is missing."""
    kd, o2 = groups.get((1, CONFIG_RECIPE)), groups.get((students, CONFIG_RECIPE))
    if not kd or not o2:
        return None
    return {"students": students, "iters": kd[0]["meta"]["iters"], "nfe": kd[0]["nfe"],
            "kd": float(np.mean([r[Q] for r in kd])), "o2mkd": float(np.mean([r[Q] for r in o2])),
            "d": stats.paired_over_seeds([values(r) for r in kd], [values(r) for r in o2])}


def _o2mkd_study(d: Data):
    """The study's KD minus the claim's N over their training seeds, at the study's
    budget (None when the study was not built)."""
    v = study_difference(study_groups(d.records), d.o2mkd_students)
    if v is None:
        return None
    s = v["d"]
    return (f"DDIM {v['nfe']}, {v['iters']} iterations, {s['train_seeds']} training seeds each: one-to-one KD "
            f"(FID inf {v['kd']:.2f}) minus O2MKD N={d.o2mkd_students} ({v['o2mkd']:.2f}): {_pm(s)}; "
            f"detectable {s['detectable']:.2f} (results/ablations)", {"d": s})


def _o2mkd(d: Data):
    study = _o2mkd_study(d)
    if study is not None:
        return study
    o2 = [r for r in in_table(d.records, "o2mkd") if r.get("family") == "o2mkd"
          and "DDIM" in r.get("meta", {}).get("o2mkd", {}).get("col", "")]
    kd = {r["nfe"]: r for r in o2 if r["label"].startswith("one-to-one")}
    n = {r["nfe"]: r for r in o2 if r["label"] == f"O2MKD N={d.o2mkd_students}"}
    common = sorted(set(kd) & set(n))
    if not common:
        return None
    k = common[-1]
    s = stats.paired_rows(kd[k], n[k])
    return (f"DDIM {k}: one-to-one KD (FID inf {kd[k][Q]:.2f}) minus O2MKD N={d.o2mkd_students} ({n[k][Q]:.2f}), "
            f"the N fixed in the config beforehand: {_pm(s)} (one training seed each)", {"d": s})


def _benchmark(d: Data):
    """results/benchmarks/sfd_vs_pd.json: PD's time to SFD's final NFE-2 FID over SFD's
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
    return (first + second + " (results/benchmarks)",
            {"ratio": b["ratio"], "lower_bound": bool(b.get("ratio_is_lower_bound"))})


CLAIMS = [
    Claim("SFD at NFE 2 beats training-free sampling at equal or higher NFE",
          "SFD NFE 2: 4.53 vs DPM-Solver++(3M) NFE 5: 24.97, DDIM NFE 10: 15.69 (CIFAR-10)",
          "best training-free baseline at NFE 2 minus SFD at NFE 2, paired, > 0", better,
          {"d": exact(24.97 - 4.53)}, _sfd_vs_solvers),
    Claim("SFD fine-tunes far faster than PD at equal quality", "0.64 A100 h (SFD, NFE 2: 4.53) vs ~171 h (PD, NFE 2: "
          "4.51): ~267x", "PD / SFD wall clock to the same NFE-2 FID; holds above 2x", faster,
          {"ratio": 171 / 0.64}, _benchmark),
    Claim("AFS helps", "Table 1 / Figure 4 ablation (numbers unverified)",
          "FID inf without AFS minus with AFS, paired (training seeds included), > 0", better, None,
          _ablation("AFS", "False")),
    Claim("L1 beats or matches L2", "Figure 4: best with L1 (numbers unverified)",
          "FID inf(L2) - FID inf(L1) > 0 (beats), or within ±10 % of the default's FID inf by two one-sided "
          "tests (matches)", beats_or_matches(0.10), None, _ablation("loss", "l2")),
    Claim("t_min = 0.006 is the best tested value", "Figure 5: t_min ablation (numbers unverified)",
          "every other t_min minus 0.006, paired, > 0", each_better, None,
          _best_tested("t_min")),
    Claim("K = 4 (M = 3) is the best tested value", "Table 1: K = 1..6 (numbers unverified)",
          "every other K minus K = 4, paired, > 0", each_better, None,
          _best_tested("K (teacher steps per student step)")),
    Claim("The DPM-Solver++(3M) teacher beats Euler", "Figure 4 (numbers unverified)",
          "FID inf(Euler teacher) - FID inf(3M teacher), paired, > 0", better, None,
          _ablation("teacher solver", "euler")),
    Claim("SFD-v is about as good as the per-NFE SFD students", "SFD-v 2/3/4/5: 4.28/3.50/3.18/2.95 vs SFD "
          "4.53/3.58/3.24/3.06 (ratio 0.97)", "FID inf(SFD-v) / FID inf(SFD), mean over NFE, at most 1.10 "
          "(one-sided 5 %)", at_most(1.10),
          {"ratio": float(np.mean([4.28 / 4.53, 3.50 / 3.58, 3.18 / 3.24, 2.95 / 3.06]))}, _sfdv),
    Claim("The second stage gives a usable 1-NFE model", "SFD stage 2 NFE 1: 5.83 vs SFD NFE 2: 4.53 (x1.29)",
          "FID inf(stage 2, NFE 1) / FID inf(SFD, NFE 2) at most 1.5 (one-sided 5 %)", at_most(1.5),
          {"ratio": 5.83 / 4.53}, _second_stage),
    Claim("PD halves the steps down to 4 with little loss", "PD 8/4 steps: 2.57/3.00 (x1.17); 2 and 1 steps, beyond "
          "the claim: 4.51 (x1.50), 9.12 (x2.02)", "each round that ends at 4 steps or more: FID inf ratio to its "
          "teacher at most 1.5 (one-sided 5 %)", rounds_lose_little(1.5, 4),
          {"rounds": [{"from": 8, "to": 4, "ratio": 3.00 / 2.57}, {"from": 4, "to": 2, "ratio": 4.51 / 3.00},
                      {"from": 2, "to": 1, "ratio": 9.12 / 4.51}]}, _pd_rounds),
    Claim("O2MKD beats one-to-one KD at equal cost per step", "comparison with one-to-one KD (numbers not public)",
          "FID inf(one-to-one KD) - FID inf(O2MKD, N from the config), paired, > 0: over the training seeds of "
          "the O2MKD study where built (its budget and DDIM steps), else the main table's largest DDIM step count",
          better, None, _o2mkd),
    Claim("Ours: the teacher's lower-order final steps matter", "a digits prototype: forced lower order 1.95 vs "
          "DPM-Solver convention 6.37", "FID inf(final step 'dpm') - FID inf('force'), paired, > 0", better,
          {"d": exact(6.37 - 1.95)}, _ablation("teacher final step", "dpm")),
]


def claims(records: list[dict], benchmark: str | None = None, o2mkd_students: int = 3) -> pd.DataFrame:
    d = Data(records, benchmark, o2mkd_students)
    rows = []
    for c in CLAIMS:
        got = c.ours(d)
        text, verdict = NOT_MEASURED if got is None else (got[0], c.decide(got[1]))
        rows.append({"claim": c.claim, "paper's evidence": c.evidence, "rule": c.rule, "ours": text,
                     "verdict": verdict})
    return pd.DataFrame(rows)


def write_claims(fid_files, out_dir, benchmark: str | None = None, o2mkd_students: int = 3) -> pd.DataFrame:
    df = claims(load_records(fid_files), benchmark, o2mkd_students)
    with atomic_dir(out_dir) as out:
        write_table(out, "claims", df, "The papers' claims against our measurements", RULE, intro=(
            "Our numbers are FIDs at infinite n on the pipeline's features at its scale (see docs/results.md, 'Reading the "
            "results'): they test the direction and size of each effect, not the papers' absolute values."))
    return df
