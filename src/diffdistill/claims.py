"""A claim and the rules that decide it. Each claim is stated as the paper states it,
with the paper's own numbers as evidence, the rule that decides it and our measurement;
the methods hold their claims (`Method.claims`, each method's report module) and the
claims table (`diffdistill.claims_table`) gives each its verdict.

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
(tests/test_claims.py, test_every_rule_holds_on_the_papers_own_numbers); a rule the
paper would fail is a wrong rule. *not measured*: our measurement is missing (a claim
never holds by default)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from . import stats
from .records import values

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
    order: int = 0                   # its row in the claims table (`methods.all_claims` sorts by it)


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


def ratio_rows(num: dict, den: dict, nfes) -> dict | None:
    """The ratios of FIDs at infinite n of rows `num` over rows `den` ({NFE: row}) at
    each NFE both have, for `at_most` (the first) and `each_at_most` (all); None
    where they share none."""
    pairs = [(num[n], den[n]) for n in nfes if n in num and n in den]
    if not pairs:
        return None
    rs = [stats.ratio(values(a), values(b)) for a, b in pairs]
    k = min(len(values(a)) for a, _ in pairs)
    rows = [[a.get("name"), b.get("name")] for a, b in pairs]
    return {"ratio": rs[0][0], "se": rs[0][1], "df": k - 1, "per": rs, "rows": rows[0], "per_rows": rows}
