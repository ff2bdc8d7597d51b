"""Paired comparisons of result rows that share their evaluation seeds.

Every row is evaluated on the same seed sets (set k: seeds k*n .. (k+1)*n - 1), so most
of the sampling noise is common to both sides of a comparison. A difference between two
rows is therefore read from the per-seed-set differences d_k = A_k - B_k: their mean,
standard error sd(d) / sqrt(K), and Student's t with K - 1 degrees of freedom
(two-sided, 5 %). Where two *trained* models are compared, the spread of the default
over its training seeds (s_train, from T seeds) adds its variance, and the degrees of
freedom come from the Welch-Satterthwaite formula. Closeness and equivalence are two
one-sided tests (TOST) against a stated margin. Ratios are only ever taken of bias-free
quantities (FID at infinite n), never of FIDs at finite n, whose bias depends on n.
"""
from __future__ import annotations

import math

import numpy as np

RULE = ("Paired over the evaluation seed sets: the per-set differences' mean ± standard error, Student's t "
        "with K - 1 degrees of freedom (two-sided 95 %; with training seeds, Welch-Satterthwaite); a difference "
        "is *significant* when the 95 % interval excludes 0.")


def t_crit(df: float, two_sided_level: float = 0.95) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + two_sided_level / 2, df)) if df and df > 0 else float("nan")


def paired(a, b, train_sd: float | None = None, train_seeds: int = 0) -> dict:
    """The paired difference mean(A - B) over the seed sets both have, its standard
    error, degrees of freedom, t, two-sided p and the 95 % half-width (`detectable`: the
    smallest difference this comparison calls significant). `train_sd` (from
    `train_seeds` training seeds) adds training noise when both sides are trained."""
    from scipy.stats import t as student

    k = min(len(a), len(b))
    d = np.asarray(a[:k], float) - np.asarray(b[:k], float)
    mean = float(d.mean()) if k else float("nan")
    v1 = float(d.var(ddof=1)) / k if k > 1 else float("nan")
    df1 = k - 1
    var, df = v1, float(df1)
    if train_sd is not None and train_sd == train_sd and train_seeds > 1:
        v2, df2 = train_sd ** 2, train_seeds - 1
        var = v1 + v2
        df = var ** 2 / (v1 ** 2 / df1 + v2 ** 2 / df2) if df1 > 0 and var > 0 else float(df2)
    se = math.sqrt(var) if var == var else float("nan")
    t = mean / se if se and se == se else float("nan")
    p = float(2 * student.sf(abs(t), df)) if t == t and df > 0 else float("nan")
    return {"diff": mean, "se": se, "df": df, "t": t, "p": p, "detectable": t_crit(df) * se if se == se else se,
            "sets": k}


def paired_over_seeds(a_runs, b_runs) -> dict:
    """`paired` for two models trained with T seeds each: a_runs and b_runs hold, per
    training seed, the per-set values on the shared evaluation seed sets. The difference
    is that of the per-set means over the seeds; the spread of the per-seed differences
    of the means, sd(d_s) / sqrt(T), enters as the training noise (T - 1 degrees of
    freedom). With one seed, plain `paired`."""
    t = min(len(a_runs), len(b_runs))
    k = min(len(v) for v in [*a_runs[:t], *b_runs[:t]])
    a = np.mean([np.asarray(v[:k], float) for v in a_runs[:t]], axis=0)
    b = np.mean([np.asarray(v[:k], float) for v in b_runs[:t]], axis=0)
    if t < 2:
        return {**paired(a, b), "train_seeds": t}
    d_s = [float(np.mean(x[:k]) - np.mean(y[:k])) for x, y in zip(a_runs[:t], b_runs[:t])]
    return {**paired(a, b, train_sd=float(np.std(d_s, ddof=1)) / math.sqrt(t), train_seeds=t), "train_seeds": t}


def significant(s: dict) -> bool:
    return s["p"] == s["p"] and s["p"] < 0.05


def direction(s: dict, paper_sign: int = 1) -> str:
    """holds (significant, the paper's sign), does not hold (significant, opposite) or
    inconclusive; `paper_sign` +1 when the paper expects diff > 0."""
    if s["se"] != s["se"]:
        return "inconclusive (no spread measured)"
    if not significant(s):
        return "inconclusive"
    return "holds" if s["diff"] * paper_sign > 0 else "does not hold"


def equivalent(s: dict, margin: float) -> str:
    """TOST at 5 %: holds when the 90 % interval of the difference lies within
    (-margin, margin); does not hold when it lies wholly outside; else inconclusive."""
    if s["se"] != s["se"]:
        return "inconclusive (no spread measured)"
    h = t_crit(s["df"], 0.90) * s["se"]
    if abs(s["diff"]) + h < margin:
        return "holds"
    if abs(s["diff"]) - h > margin:
        return "does not hold"
    return "inconclusive"


def at_most(value: float, se: float, df: float, bound: float) -> str:
    """One-sided 5 % test of value <= bound: holds when value + t_0.95 se <= bound,
    does not hold when value - t_0.95 se > bound; with no spread, the value itself."""
    h = t_crit(df, 0.90) * se if se == se and df == df and df > 0 else 0.0
    if value + h <= bound:
        return "holds"
    if value - h > bound:
        return "does not hold"
    return "inconclusive"


def ratio(a, b) -> tuple[float, float]:
    """mean(A) / mean(B) over paired sets and its standard error (delta method on the
    per-set values, their covariance included); A and B are bias-free quantities."""
    k = min(len(a), len(b))
    x, y = np.asarray(a[:k], float), np.asarray(b[:k], float)
    r = float(x.mean() / y.mean())
    if k < 2:
        return r, float("nan")
    c = np.cov(x, y) / k
    var = (c[0, 0] - 2 * r * c[0, 1] + r * r * c[1, 1]) / y.mean() ** 2
    return r, math.sqrt(max(var, 0.0))


def fmt(s: dict, f: str = "{:+.2f}") -> str:
    """'+4.71 ± 0.14 (t(2) = 33.6, p = 0.001)'."""
    if s["se"] != s["se"]:
        return f.format(s["diff"]) + " (one seed set: no spread)"
    return (f"{f.format(s['diff'])} ± {abs(s['se']):.2f} (t({s['df']:.0f}) = {s['t']:.1f}, "
            f"p = {s['p']:.2g})")
