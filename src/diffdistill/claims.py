"""The papers' claims against our measurements: one row per claim, stated as the paper
states it, with the paper's own numbers as evidence, the rule that decides it, our
measurement and a verdict.

Every rule reads bias-free quantities (FID at infinite n) and, for our rows, paired
statistics over the seed sets every row shares (`diffdistill.stats`). Each rule turns
its evidence into a `Test`: the direction of the decisive comparison, its p value, the
largest effect in the claim's direction the data leave open (the bound of the 90 %
interval: TOST at that value holds) and the effect it detects with 80 % power. A claim
made of several comparisons (every NFE, every pair) holds only when every one does
(intersection-union: its p is the largest). The claims are one confirmatory family:
Holm's correction over their p values; an adjusted p below 0.05 gives *holds* or *does
not hold* by the direction, otherwise the verdict says *no effect larger than X*. The
same rule applied to the paper's own numbers (exact values: no spread) gives *holds*
(tests/test_claims.py); a rule the paper would fail is a wrong rule. *not measured*:
our measurement is missing (a claim never holds by default)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import stats
from .atomic import atomic_dir
from .files import read_json_object
from .jobs import job_seconds, job_table
from .naming import CONFIG_RECIPE, O2MKD_STUDY
from .records import Q, at_sets, combination, fine_tune_seconds, in_table, load_records, model_meta, reference, values
from .tables.ablation import ablation_table
from .tables.cost import write_job_page
from .tables.format import write_table

RULE = ("Verdicts: differences are paired over the evaluation seed sets (Student's t; training noise of both sides "
        "added where trained models are compared, each side the mean of its models, the fits' own noise where FIDs at "
        "infinite n are); a bound on a ratio of FIDs at infinite n is a one-sided test with the ratio's standard "
        "error; a claim made of several comparisons holds only when each does (its p is the largest). The claims are one family: Holm's correction "
        "over their p values. *holds* / *does not hold*: the adjusted p is below 0.05, in the claim's direction or "
        "against it; *no effect larger than X*: neither, and the 90 % interval excludes effects in the claim's "
        "direction beyond X (the '80 % power' column: the effect the comparison detects with 80 % power); "
        "*not measured*: missing. Each rule gives *holds* on the paper's own numbers (its evidence column). "
        "'X target': half the effect each claim is about, fixed before the run: where the paper gives the effect, "
        "carried to our scale through the same rows (a fraction of a row the paper and we both have); for a ratio "
        "bound, its distance from 1; else 10 % of the default SFD student's FID at infinite n at NFE 2. 'budget to "
        "reach it': where this run neither decided the claim nor bounded it by X, the cheapest budget whose 90 % "
        "interval ends below X with 80 % power when the true effect is 0 ((t_0.95 + t_0.80) SE <= X; it detects "
        "the claim's whole effect, 2 X, with more), or, where the estimate is already beyond X, the budget that "
        "decides the claim at its estimate with 80 % power: seed sets (their variance shrinks as 1 / sets) and, "
        "where training noise enters, training seeds per model (it shrinks as 1 / seeds, and no number of seed "
        "sets removes it); its minutes from this run's own job times, beside the claims target's budget "
        "(claims.budget_minutes).")
NOT_MEASURED = "not measured"
UNBOUNDED = "unbounded"


def exact(diff: float) -> dict:
    """A paper's difference as a stats.paired result: exact, no spread."""
    return {"diff": diff, "se": 0.0, "df": math.inf, "t": math.copysign(math.inf, diff) if diff else 0.0,
            "p": 0.0 if diff else 1.0, "detectable": 0.0, "sets": 1}


@dataclass(frozen=True)
class Test:
    """What a rule makes of its evidence: `sign` +1 when the decisive comparison points
    the claim's way, -1 against it; `p` its p value (NaN: no spread, decides nothing);
    `bound`: the largest effect in the claim's direction the data leave open, as text;
    `power`: the effect detected with 80 % power, as text; `verdict`: fixed verdicts
    (not measured, no spread) that no correction changes."""
    sign: int = 0
    p: float = float("nan")
    bound: str = ""
    power: str = ""
    verdict: str = ""
    notes: list = field(default_factory=list)
    point: float = float("nan")   # the decisive comparison's estimate, in the claim's direction
    half: float = float("nan")    # its one-sided 95 % half-width (bound = point + half)
    sets: int = 0                 # the seed sets it was measured on
    s: dict | None = None         # the decisive comparison (a stats.paired result), for its budget


@dataclass(frozen=True)
class Claim:
    claim: str            # as the paper states it
    evidence: str         # the paper's numbers
    rule: str             # the metric and the threshold, in words
    test: Callable        # test(evidence values) -> Test, for the paper's numbers and for ours
    paper: dict | None    # the paper's numbers in the test's form (None: not published)
    ours: Callable        # ours(data) -> (text, values) or None
    test_kind: str = "difference"    # difference (FID), ratio (its bound: ratio_bound) or none (no target X)
    ratio_bound: float = float("nan")
    carry: Callable | None = None    # carry(data, our values) -> the paper's effect on our scale, test's units


def verdict(t: Test, p_adjusted: float) -> str:
    """holds / does not hold at the adjusted p, else 'no effect larger than X'."""
    if t.verdict:
        return t.verdict
    if p_adjusted == p_adjusted and p_adjusted < 0.05:
        return "holds" if t.sign > 0 else "does not hold"
    if t.bound == UNBOUNDED:
        return "inconclusive (no upper bound on the effect)"
    return f"no effect larger than {t.bound}" if t.bound else "inconclusive (no spread measured)"


def decide(test: Test) -> str:
    """The verdict of one claim on its own (a family of one)."""
    return verdict(test, test.p)


def set_seconds(r: dict) -> float:
    """Process seconds of one seed set of a row: its sampling and metrics jobs' (metadata
    sidecars) over its seed sets."""
    files = [f for f in (r.get("samples"), r.get("metrics_file")) if f]
    return sum(job_seconds(f) for f in files) / max(1, r.get("seed_sets", 1))


class Data:
    """The records the claims read, by role."""

    def __init__(self, records: list[dict], benchmark: str | None = None, o2mkd_students: int = 3):
        # the rows of the main and the extended tables (PD's chain, SFD-v and the second stage are in the latter)
        self.records, self.table_rows = records, in_table(records, ("main", "extended"))
        self.by_name = {r.get("name"): r for r in records}
        self.ref = reference(self.table_rows)
        self.abl = {}
        if any("ablations" in r.get("tables", ()) for r in records):
            df, _ = ablation_table(records, "ablations")
            self.abl = {(row["factor"], row["value"]): row for row in df.to_dict("records")}
        self.benchmark = read_json_object(benchmark, (), "benchmark file") if benchmark and Path(benchmark).exists() \
            else None
        self.o2mkd_students = o2mkd_students

    def costs(self, names: list) -> tuple[float, float]:
        """What more budget costs for these rows, from their jobs' own clocks (metadata
        sidecars): seconds per extra seed set (sampling and metrics of every row, over its
        seed sets) and per extra trained model (training of every trained row)."""
        per_set = per_model = 0.0
        for r in (self.by_name.get(n) for n in names):
            if r is None:
                continue
            per_set += set_seconds(r)
            if r.get("kind") == "distilled":
                per_model += fine_tune_seconds(model_meta(r)) or 0.0
        return per_set, per_model

    def rows(self, family: str, kind: str = "distilled") -> dict:
        return {r["nfe"]: r for r in self.table_rows if r.get("family") == family and r.get("kind") == kind}


# -- rules: one per kind of claim; each takes the values the paper and we both give ---------

def _fmt(x: float, unit: str = "") -> str:
    return f"{unit}{x:.2f}" if x == x else "?"


def _difference_test(s: dict) -> Test:
    """One paired difference, positive in the claim's direction."""
    if s["se"] != s["se"]:
        return Test(verdict="inconclusive (no spread measured)")
    sign = 1 if s["diff"] > 0 else -1 if s["diff"] < 0 else 0
    up = stats.upper_bound(s["diff"], s["se"], s["df"])
    return Test(sign=sign, p=s["p"], bound=_fmt(up) + " FID", power=_fmt(stats.power80(s["se"], s["df"])) + " FID",
                point=s["diff"], half=up - s["diff"], sets=s.get("sets", 0), s=s)


def _every(tests: list[Test]) -> Test:
    """Intersection-union: every comparison must hold. Against the claim as soon as one
    comparison is (its smallest p decides); else the largest p, and the weakest bound."""
    fixed = [t for t in tests if t.verdict]
    if not tests:
        return Test(verdict=NOT_MEASURED)
    if fixed:
        return fixed[0]
    against = [t for t in tests if t.sign < 0]
    if against:
        worst = min(against, key=lambda t: t.p)
        if worst.p < 0.05:
            return worst
    weakest = max(tests, key=lambda t: (t.sign <= 0, t.p))
    rows = list(dict.fromkeys(n for t in tests if t.s for n in t.s.get("rows") or []))  # a budget buys them all
    return Test(sign=1 if all(t.sign > 0 for t in tests) else -1 if weakest.sign < 0 else 0,
                p=max(t.p for t in tests), bound=weakest.bound, power=weakest.power, point=weakest.point,
                half=weakest.half, sets=weakest.sets, s={**weakest.s, "rows": rows} if weakest.s else None)


def better(v: dict) -> Test:
    """v = {"d": paired difference, worse minus better in the paper's direction}."""
    return _difference_test(v["d"])


def each_better(v: dict) -> Test:
    """v = {"ds": [paired differences, each positive in the claim's direction]}."""
    return _every([_difference_test(d) for d in v["ds"]])


def _ratio_test(r: float, se: float, df: float, bound: float, rows: list | None = None) -> Test:
    """One-sided test of ratio <= bound (p: of ratio > bound) and its reverse."""
    from scipy.stats import t as student

    if r != r or se != se:
        return Test(verdict="inconclusive (no ratio: a FID at infinite n at or below 0, or no spread)")
    if se == 0:
        return Test(sign=1 if r <= bound else -1, p=0.0, bound=_fmt(r, "x"))
    p_holds = float(student.sf((bound - r) / se, df))
    p_fails = float(student.sf((r - bound) / se, df))
    sign, p = (1, p_holds) if r <= bound else (-1, p_fails)
    up = stats.upper_bound(r, se, df)
    sets = int(df) + 1 if df == df and df < math.inf else 0
    return Test(sign=sign, p=p, bound=_fmt(up, "x"), power=_fmt(stats.power80(se, df), "±x"),
                point=r - 1, half=up - r, sets=sets,
                s={"se": se, "df": df, "sets": sets, "parts": {"sets": (se ** 2, df)}, "rows": rows or []})


def at_most(bound: float) -> Callable:
    """v = {"ratio", "se", "df"}: the ratio at most `bound`, one-sided."""
    return lambda v: _ratio_test(v["ratio"], v.get("se", 0.0), v.get("df", math.inf), bound, v.get("rows"))


def each_at_most(bound: float) -> Callable:
    """v = {"per": [(ratio, se), ...], "df"}: every ratio at most `bound`."""
    return lambda v: _every([_ratio_test(r, se, v.get("df", math.inf), bound, rows)
                             for (r, se), rows in zip(v["per"], v.get("per_rows") or [None] * len(v["per"]))])


def beats_or_matches(margin: float) -> Callable:
    """Better (significantly), or equivalent within `margin` x the default's FID (TOST,
    the margin fixed before any run); worse beyond it: does not hold. Where the run's
    TOST half-width cannot reach the margin, the test says so and how many seed sets
    would."""
    def test(v):
        d, m = v["d"], margin * v["scale"]
        if d["se"] != d["se"]:
            return Test(verdict="inconclusive (no spread measured)")
        if d["se"] == 0:
            return Test(sign=1 if d["diff"] > -m else -1, p=0.0, bound=_fmt(abs(d["diff"])) + " FID")
        from scipy.stats import t as student

        p_beats = d["p"] if d["diff"] > 0 else 1.0
        p_tost = max(float(student.sf((d["diff"] + m) / d["se"], d["df"])),
                     float(student.sf((m - d["diff"]) / d["se"], d["df"])))
        p_worse = float(student.sf((-d["diff"] - m) / d["se"], d["df"]))  # worse by more than the margin
        h = stats.t_crit(d["df"], 0.90) * d["se"]
        notes = []
        if h >= m - abs(d["diff"]):
            sets = d["sets"] * (h / (m - abs(d["diff"]))) ** 2 if m > abs(d["diff"]) else float("inf")
            notes.append(f"its TOST half-width {h:.2f} cannot reach the margin {m:.2f} at this difference"
                         + (f"; about {math.ceil(sets)} seed sets would" if sets < float("inf") else ""))
        sign, p = (1, min(p_beats, p_tost)) if min(p_beats, p_tost) <= p_worse else (-1, p_worse)
        return Test(sign=sign, p=p, bound=f"{abs(d['diff']) + h:.2f} FID either way (margin {m:.2f})",
                    power=_fmt(stats.power80(d["se"], d["df"])) + " FID", notes=notes, point=abs(d["diff"]),
                    half=h, sets=d.get("sets", 0), s=d)
    return test


def faster(v: dict) -> Test:
    """Faster than 2x. With the benchmark's bootstrap of the curves' noise (`p_faster`:
    the share of draws at or below 2x; `p_not_faster`: at or above it): a one-sided test
    that enters the family's correction, its bound the 95 % point of the ratio (the
    largest speed-up the curves leave open). Without it (one measurement, no spread):
    above 2x holds, below 0.5x does not, and a lower bound (the slower method never got
    there) decides only when it is above 2x; it never enters the correction."""
    if "p_faster" in v:
        up = UNBOUNDED if v.get("upper_95") is None else _fmt(v["upper_95"], "x")
        sign, p = (1, v["p_faster"]) if v["p_faster"] <= v["p_not_faster"] else (-1, v["p_not_faster"])
        return Test(sign=sign, p=max(p, 1.0 / (v.get("reps") or 1)), bound=up,
                    notes=[f"90 % interval x{v['lower_5']:.1f} .. {up} over {v.get('reps')} bootstrap draws"])
    if v.get("lower_bound"):
        return Test(verdict="holds (no spread measured)" if v["ratio"] > 2 else "inconclusive (a lower bound)")
    if v.get("exact"):
        return Test(sign=1 if v["ratio"] > 2 else -1, p=0.0, bound=_fmt(v["ratio"], "x"))
    return Test(verdict=("holds" if v["ratio"] > 2 else "does not hold" if v["ratio"] < 0.5 else "inconclusive")
                + " (no spread measured)")


def rounds_keep_half(down_to: int) -> Callable:
    """Every halving round that ends at `down_to` steps or more keeps at least half of
    what training-free halving would lose: student(n/2) - teacher(n) is at most half of
    DDIM(n/2) - teacher(n) on the same network and grid, one-sided, per round. The
    margin comes from the training-free sampler, not from the paper's rounds.
    v = {"rounds": [{"to", "e": paired (student - teacher/2 - DDIM/2), < 0 in the claim's
    direction}]}."""
    def test(v):
        kept = [r for r in v["rounds"] if r["to"] >= down_to]
        if not kept:
            return Test(verdict=NOT_MEASURED)
        return _every([_difference_test({**r["e"], "diff": -r["e"]["diff"]}) for r in kept])
    return test


# -- the papers' effects on our scale ------------------------------------------------------
# A paper's effect is a fraction of a row it shares with ours (the teacher, a training-free
# sampler); the same fraction of our row is the effect on our scale. Only the papers'
# numbers enter the fractions.
EDM_TEACHER = 1.97  # EDM's CIFAR-10 teacher at 35 NFE, SFD's (METHODS: the papers' student/teacher ratio)
SFD_2, DPMPP3M_5 = 4.53, 24.97  # SFD at NFE 2 and DPM-Solver++(3M) at NFE 5, SFD's table
PD_8, PD_4, DDIM_10 = 2.57, 3.00, 15.69  # PD's rounds 8 -> 4 and DDIM at 10 steps (DDIM at 4 is worse still)
PROTO_FORCE, PROTO_DPM, PROTO_TEACHER = 1.95, 6.37, 2.10  # the digits prototype's FDs (lower order forced / not)


def _carry_sfd_vs_solvers(d: "Data", values: dict | None) -> float:
    """The paper's smallest gap (SFD at NFE 2 against DPM-Solver++(3M) at NFE 5) as a
    fraction of that sampler's excess over the teacher, times our sampler's excess over
    our reference."""
    row = d.by_name.get("teacher-dpmpp3m-afs/nfe5") or d.by_name.get("teacher-dpmpp3m/nfe5")
    if row is None or d.ref is None:
        return float("nan")
    return (DPMPP3M_5 - SFD_2) / (DPMPP3M_5 - EDM_TEACHER) * (row[Q] - d.ref[Q])


def _carry_pd(d: "Data", values: dict | None) -> float:
    """The paper's round 8 -> 4 keeps (DDIM's loss / 2 - PD's loss) of DDIM's halving loss
    (at least 15.69 - 2.57; DDIM at 4 steps is worse than at 10): that fraction of our
    smallest DDIM halving loss among the claim's rounds (`values`: `_pd_rounds`')."""
    frac = ((DDIM_10 - PD_8) / 2 - (PD_4 - PD_8)) / (DDIM_10 - PD_8)
    losses = [r["ddim_loss"] for r in values["rounds"] if r["to"] >= 4] if values else []
    return frac * min(losses) if losses else float("nan")


def _carry_final_step(d: "Data", values: dict | None) -> float:
    """The prototype's gain from forced lower-order final steps as a fraction of its
    teacher's FD, times our reference's FID at infinite n."""
    return (PROTO_DPM - PROTO_FORCE) / PROTO_TEACHER * d.ref[Q] if d.ref is not None else float("nan")


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
    ours.reads = (factor, value)  # the ablation rows it needs (the workflow builds them with the claims)
    return ours


def _best_tested(factor: str):
    def ours(d: Data):
        others = [(v, row) for (f, v), row in d.abl.items() if f == factor]
        default = d.abl.get(("default", ""))
        if not others or default is None:
            return None
        text = "; ".join(f"{v}: {_pm(row['_paired'])}" for v, row in others)
        return f"FID inf minus the default's ({default['FID inf']:.2f}): {text}", {"ds": [r["_paired"] for _, r in others]}
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
            f"minus SFD NFE {k} ({sfd[k][Q]:.2f}): {_pm(ds[worst])}", {"ds": ds})


def _ratio_rows(num: dict, den: dict, nfes) -> dict | None:
    pairs = [(num[n], den[n]) for n in nfes if n in num and n in den]
    if not pairs:
        return None
    rs = [stats.ratio(values(a), values(b)) for a, b in pairs]
    k = min(len(values(a)) for a, _ in pairs)
    rows = [[a.get("name"), b.get("name")] for a, b in pairs]
    return {"ratio": rs[0][0], "se": rs[0][1], "df": k - 1, "per": rs, "rows": rows[0], "per_rows": rows}


def _sfdv(d: Data):
    sfd, sfdv = d.rows("sfd"), d.rows("sfdv")
    nfes = sorted(set(sfd) & set(sfdv))
    v = _ratio_rows(sfdv, sfd, nfes)
    if v is None:
        return None
    per = ", ".join(f"NFE {n}: {r:.2f} ± {se:.2f}" for n, (r, se) in zip(nfes, v["per"]))
    return f"SFD-v / SFD, FID inf, per NFE: {per}", v


def _second_stage(d: Data):
    one_step = d.rows("sfd2").get(1)
    v = _ratio_rows({2: one_step} if one_step else {}, d.rows("sfd"), [2])  # stage 2 at NFE 1 / SFD at NFE 2
    if v is None:
        return None
    return f"stage 2 at NFE 1 / SFD at NFE 2, FID inf: {v['ratio']:.2f} ± {v['se']:.2f}", v


def _pd_rounds(d: Data):
    """Each round: student minus its teacher, against half of what DDIM loses by halving
    the same teacher's steps (the DDIM rows on PD's grid, pd-teacher/nfe<n>)."""
    pd_rows, first = d.rows("pd"), d.rows("pd", "baseline")
    if not pd_rows or not first:
        return None
    chain = sorted(first.items(), reverse=True)[:1] + sorted(pd_rows.items(), reverse=True)
    rounds, parts, missing = [], [], []
    for (a, ra), (b, rb) in zip(chain, chain[1:]):
        if a != 2 * b:
            continue
        ddim = d.by_name.get(f"pd-teacher/nfe{b}")
        if ddim is None:
            missing.append(b)
            continue
        e = combination([(rb, 1.0), (ra, -0.5), (ddim, -0.5)])
        zero = {Q: 0.0, f"{Q}_sets": [0.0] * len(e[f"{Q}_sets"]),
                **({"fid_bias_draws": [0.0] * len(e["fid_bias_draws"])} if "fid_bias_draws" in e else {})}
        rounds.append({"from": a, "to": b, "e": stats.paired_rows(e, zero), "ddim_loss": ddim[Q] - ra[Q]})
        parts.append(f"{a}->{b}: {rb[Q] - ra[Q]:+.2f} vs DDIM's {ddim[Q] - ra[Q]:+.2f}")
    if not rounds:
        return None
    text = "student minus its teacher against DDIM halving the same teacher, FID inf: " + "; ".join(parts)
    if missing:
        text += f" (no DDIM row at {', '.join(map(str, missing))} steps: pd.first_teacher_steps)"
    return text, {"rounds": rounds}


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
            "d": {**stats.paired_over_seeds([values(r) for r in kd], [values(r) for r in o2]),
                  "rows": [r.get("name") for r in kd[:1] + o2[:1]]}}


def _o2mkd_study(d: Data):
    """The study's KD minus the claim's N over their training seeds, at the study's
    budget (None when the study was not built)."""
    v = study_difference(study_groups(d.records), d.o2mkd_students)
    if v is None:
        return None
    s = v["d"]
    return (f"DDIM {v['nfe']}, {v['iters']} iterations, {s['train_seeds']} training seeds each: one-to-one KD "
            f"(FID inf {v['kd']:.2f}) minus O2MKD N={d.o2mkd_students} ({v['o2mkd']:.2f}): {_pm(s)}; "
            "results/ablations", {"d": s})


def _o2mkd(d: Data):
    """Decided over training seeds only (the study); one model per side cannot tell the
    routers from their training noise, so without the study the claim is not measured."""
    return _o2mkd_study(d)


def _benchmark(d: Data):
    """results/benchmark-runs/sfd_vs_pd.json: PD's time to SFD's final NFE-2 FID over SFD's
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
          carry=_carry_sfd_vs_solvers),
    Claim("SFD fine-tunes far faster than PD at equal quality", "0.64 A100 h (SFD, NFE 2: 4.53) vs ~171 h (PD, NFE 2: "
          "4.51): ~267x", "PD / SFD wall clock to the same NFE-2 FID; holds above 2x", faster,
          {"ratio": 171 / 0.64, "exact": True}, _benchmark, test_kind="none"),
    Claim("AFS helps", "Table 1 / Figure 4 ablation (numbers unverified)",
          "FID inf without AFS minus with AFS, paired (training noise of both models included), > 0", better, None,
          _ablation("AFS", "False")),
    Claim("L1 beats or matches L2", "Figure 4: best with L1 (numbers unverified)",
          "FID inf(L2) - FID inf(L1) > 0 (beats), or within ±10 % of the default's FID inf by two one-sided "
          "tests (matches; the margin fixed before any run)", beats_or_matches(0.10), None, _ablation("loss", "l2")),
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
          "4.53/3.58/3.24/3.06 (ratios 0.94-0.98)", "FID inf(SFD-v) / FID inf(SFD) at every NFE at most 1.10 "
          "(one-sided, each NFE)", each_at_most(1.10),
          {"per": [(4.28 / 4.53, 0.0), (3.50 / 3.58, 0.0), (3.18 / 3.24, 0.0), (2.95 / 3.06, 0.0)]}, _sfdv,
          test_kind="ratio", ratio_bound=1.10),
    Claim("The second stage gives a usable 1-NFE model", "SFD stage 2 NFE 1: 5.83 vs SFD NFE 2: 4.53 (x1.29)",
          "FID inf(stage 2, NFE 1) / FID inf(SFD, NFE 2) at most 1.5 (one-sided)", at_most(1.5),
          {"ratio": 5.83 / 4.53}, _second_stage, test_kind="ratio", ratio_bound=1.5),
    Claim("PD halves the steps down to 4 with little loss", "PD 8/4 steps: 2.57/3.00 (+0.43) where DDIM at 4 steps "
          "is above its 15.69 at 10 steps (+13.1 or more); 2 and 1 steps, beyond the claim: 4.51, 9.12",
          "each round ending at 4 steps or more: student minus its teacher at most half of what DDIM loses halving "
          "the same teacher's steps (paired, one-sided, every round)", rounds_keep_half(4),
          {"rounds": [{"from": 8, "to": 4, "e": exact(PD_4 - PD_8 / 2 - DDIM_10 / 2)}]}, _pd_rounds, carry=_carry_pd),
    Claim("O2MKD beats one-to-one KD at equal cost per step", "comparison with one-to-one KD (numbers not public)",
          "FID inf(one-to-one KD) - FID inf(O2MKD, N from the config), paired over the evaluation seed sets and the "
          "training seeds of the O2MKD study (results/ablations), > 0; without the study: not measured",
          better, None, _o2mkd),
    Claim("Ours: the teacher's lower-order final steps matter", "a digits prototype: forced lower order 1.95 vs "
          "DPM-Solver convention 6.37", "FID inf(final step 'dpm') - FID inf('force'), paired, > 0", better,
          {"d": exact(PROTO_DPM - PROTO_FORCE)}, _ablation("teacher final step", "dpm"), carry=_carry_final_step),
]


def evaluate(data: Callable[[Claim], Data]) -> list[tuple[Claim, Data, tuple | None, Test, float]]:
    """Each claim with the data it reads (`data(claim)`), our measurement (`ours`: text and
    values, None when missing), its test and its Holm-adjusted p over the family."""
    ds = [data(c) for c in CLAIMS]
    got = [c.ours(d) for c, d in zip(CLAIMS, ds)]
    tests = [Test(verdict=NOT_MEASURED) if g is None else c.test(g[1]) for c, g in zip(CLAIMS, got)]
    adjusted = stats.holm([t.p if not t.verdict else float("nan") for t in tests])
    return list(zip(CLAIMS, ds, got, tests, adjusted))


def claims(records: list[dict], benchmark: str | None = None, o2mkd_students: int = 3,
           budget_minutes: float | None = None, plan: dict | None = None) -> pd.DataFrame:
    """One row per claim: our measurement, the effect detected with 80 % power, the
    Holm-adjusted p over the claims' family and the verdict. `records` may hold rows
    evaluated on the claims plan's extra seed sets (`plan`): a claim it bought sets for
    reads every row of its comparisons on them, the others the main evaluation."""
    bought = {c["claim"]: c["sets"] for c in (plan or {}).get("claims", ()) if c.get("bought") and c.get("sets")}
    cache: dict = {}

    def data(c: Claim | None) -> Data:
        sets = bought.get(c.claim) if c else None
        if sets not in cache:
            cache[sets] = Data(at_sets(records, sets), benchmark, o2mkd_students)
        return cache[sets]

    rows = []
    for c, d, g, t, p in evaluate(data):
        text = NOT_MEASURED if g is None else "; ".join([g[0], *t.notes])
        v = verdict(t, p)
        decided = v in ("holds", "does not hold")
        # X is fixed before the run: from the main evaluation, whatever seed sets the claim was bought
        x = claim_effect(c, data(None), g[1] if g is not None and d is data(None) else None) / 2 \
            if c.test_kind != "none" else float("nan")
        target, budget = _target(c, d, t, x, decided, budget_minutes)
        rows.append({"claim": c.claim, "paper's evidence": c.evidence, "rule": c.rule, "ours": text,
                     "80 % power": t.power or "—", "p (Holm)": p, "verdict": v,
                     "X target": target, "budget to reach it": budget})
    return pd.DataFrame(rows)


def claim_effect(c: Claim, d: Data, values: dict | None = None) -> float:
    """The effect a claim is about, in its test's units, fixed before the run: the paper's
    effect carried to our scale where the paper gives one; a ratio bound's distance from
    1; otherwise 10 % of the default SFD student's FID at infinite n at NFE 2. `values`:
    our measurement's (`c.ours`), measured here when not given."""
    if c.carry is not None:
        if values is None:
            got = c.ours(d)
            values = got[1] if got else None
        e = c.carry(d, values)
        return e if e == e and e > 0 else float("nan")
    if c.test_kind == "ratio":
        return c.ratio_bound - 1
    sfd2 = d.rows("sfd").get(2)
    return 0.10 * sfd2[Q] if sfd2 is not None and sfd2[Q] > 0 else float("nan")


def _target(c: Claim, d: Data, t: Test, x: float, decided: bool = False,
            budget_minutes: float | None = None) -> tuple[str, str]:
    """The bound X to reach (`x`, half the claim's effect) and, where this run neither
    decided the claim nor reached X, the budget that would bound it by X with 80 % power
    (`stats.reach`: seed sets, and training seeds where training noise is part of the
    comparison), in minutes from this run's own job times. The same budget detects the
    claim's whole effect (2 X) with more than 80 % power."""
    if c.test_kind == "none" or x != x:
        return "—", "—"
    unit = (lambda v: f"x{1 + v:.2f}") if c.test_kind == "ratio" else (lambda v: f"{v:.2f} FID")
    if t.verdict or t.half != t.half or not t.sets or t.s is None:
        return unit(x), "—"
    if decided:
        return unit(x), "none more (decided)"
    if t.point + t.half <= x:
        return unit(x), "reached"
    if t.point >= x:  # beyond X in the claim's direction: what it needs is the power to decide it
        return unit(x), "to decide it at its estimate: " + budget_text(t.s, t.point, d, budget_minutes, False)
    return unit(x), budget_text(t.s, x, d, budget_minutes)


def budget_text(s: dict, x: float, d: Data, budget_minutes: float | None = None, one_sided: bool = True) -> str:
    """'S seed sets, T training seeds per model: about M min more' (the cheapest budget
    that reaches x with 80 % power: a bound at x where the effect is 0, or a decision
    where it is x), flagged where it exceeds the claims target's budget."""
    set_s, model_s = d.costs(s.get("rows") or [])
    got = stats.reach(s, x, stats.linear_cost(s, set_s, model_s), stats.measured_training(s), one_sided=one_sided)
    if got is None:
        return f"beyond {stats.MAX_SETS} seed sets" + (
            f" and {stats.MAX_MODELS} training seeds" if "train" in (s.get("parts") or {}) else "")
    if got["seconds"] <= 0:
        return ("none more: this run has 80 % power there; its estimate, in the claim's direction, stayed short "
                "(after Holm's correction over the family)")
    seeds = f", {got['models']} training seeds per model" if got["models"] > s.get("per_side", 1) else ""
    minutes = got["seconds"] / 60
    over = f" (over the {budget_minutes:g}-minute budget)" if budget_minutes and minutes > budget_minutes else ""
    return f"{got['sets']} seed sets{seeds}: about {minutes:.0f} min more{over}"


def write_claims(fid_files, out_dir, benchmark: str | None = None, o2mkd_students: int = 3,
                 budget_minutes: float | None = None, plan: str | None = None) -> pd.DataFrame:
    """claims.{md,csv,tex}, jobs.{md,csv,tex} (the jobs the claims needed beyond the main
    job's: the main table's rows and what made them, with their wall clock), plan.{md,...}
    (what the claims plan, its JSON file `plan`, bought: `diffdistill.budget`) and
    summary.md, the dated page of all."""
    records = load_records(fid_files, every_evaluation=True)
    p = read_json_object(plan, ("models", "sets", "claims"), "claims plan") if plan else None
    df = claims(records, benchmark, o2mkd_students, budget_minutes, p)
    main = [r["metrics_file"] for r in in_table(at_sets(records), "main")]  # the main job's evaluations
    jobs, span = job_table([str(f) for f in fid_files], exclude=main)
    budget = f"the claims target's budget: {budget_minutes:g} min" if budget_minutes else "no budget given"
    cost = (f" The jobs they needed beyond the main job's: {span['jobs']}, {span['process_seconds']:.0f} process "
            f"seconds, **{span['seconds'] / 60:.1f} min** from the first one's start to the last one's end (jobs.md; "
            f"{budget})." if span else "")
    bought, plan_rule = plan_table(p) if p else (None, "")
    with atomic_dir(out_dir, "claims") as out:
        write_table(out, "claims", df, "The papers' claims against our measurements", RULE, intro=(
            "Our numbers are FIDs at infinite n on the pipeline's features at its scale (see docs/results.md, 'Reading the "
            "results'): they test the direction and size of each effect, not the papers' absolute values." + cost))
        sections = [("claims", "The papers' claims")]
        if bought is not None:
            write_table(out, "plan", bought, "What the claims plan bought: seed sets and training seeds sized by power",
                        plan_rule)
            sections.append(("plan", "What the plan bought with the budget the first pass left"))
        if span:
            write_job_page(out, jobs, span, "Claims", (*sections, ("jobs", "Where the time went, beyond the main job")),
                           "Where the claims' time went: the jobs they needed beyond the main job's")
    return df


def plan_table(p: dict) -> tuple[pd.DataFrame, str]:
    """The plan as a table and its rule, for the claims page."""
    rows = [{"claim": c["claim"], "X target": c.get("x"), "seed sets": c.get("sets") or p.get("main_sets"),
             "models per setting": c.get("models") or 1, "min": (c.get("seconds") or 0.0) / 60,
             "bought": "yes" if c.get("bought") else "no", "why": c.get("why", "")} for c in p["claims"]]
    sd = p.get("training_sd")
    rule = (f"The first pass took {p.get('elapsed_s', 0) / 60:.1f} min of the {p.get('budget_s', 0) / 60:g}-minute "
            f"budget, on {p.get('main_sets')} seed sets (eval.seed_sets); the plan had "
            f"{max(0.0, p.get('remaining_s', 0)) / 60:.1f} min, less a minute for its own jobs ({p.get('slots')} jobs "
            "side by side). ")
    rule += (f"Training noise: the spread of FID at infinite n between training seeds, pooled over every setting "
             f"trained more than once: {sd:.2f} ({p.get('training_df')} degrees of freedom). " if sd is not None else
             "Training noise was not measured (no setting trained more than once). ")
    rule += ("For each claim neither decided nor bounded by its X target: the cheapest seed sets and models per "
             "trained setting at which the 90 % interval reaches X with 80 % power ((t_0.95 + t_0.80) SE <= X; "
             "beyond X, the power to decide it at its estimate), priced by the first pass's own job clocks, bought "
             "cheapest first while they fit.")
    return pd.DataFrame(rows), rule
