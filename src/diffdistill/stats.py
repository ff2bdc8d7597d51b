"""Paired comparisons of result rows that share their evaluation seeds.

Every row is evaluated on the same seed sets (set k: seeds k*n .. (k+1)*n - 1), so most
of the sampling noise is common to both sides of a comparison. A difference between two
rows is therefore read from the per-seed-set differences d_k = A_k - B_k: their mean,
standard error sd(d) / sqrt(K), and Student's t with K - 1 degrees of freedom
(two-sided, 5 %). Where *trained* models are compared, their training noise (the spread
between training seeds, s_train, over each side's models) adds its variance, and the
degrees of freedom come from the Welch-Satterthwaite formula. Closeness and equivalence are two
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


def paired(a, b, train_sd: float | None = None, train_seeds: int = 0, fit_var: float = 0.0,
           fit_df: int = 0, per_side: int = 1) -> dict:
    """The paired difference mean(A - B) over the seed sets both have, its standard
    error, degrees of freedom, t, two-sided p and the 95 % half-width (`detectable`: the
    smallest difference this comparison calls significant). `train_sd` (from
    `train_seeds` training seeds) adds training noise when both sides are trained;
    `fit_var` (with `fit_df` degrees of freedom, from `fit_noise`) the FID-at-infinite-n
    fits' own noise. The degrees of freedom of a sum of variances: Welch-Satterthwaite.
    `parts` keeps each variance with its degrees of freedom, and `per_side` the trained
    models averaged on each side, for `reach`."""
    from scipy.stats import t as student

    k = min(len(a), len(b))
    d = np.asarray(a[:k], float) - np.asarray(b[:k], float)
    mean = float(d.mean()) if k else float("nan")
    named = {"sets": (float(d.var(ddof=1)) / k if k > 1 else float("nan"), k - 1)}
    if train_sd is not None and train_sd == train_sd and train_seeds > 1:
        named["train"] = (train_sd ** 2, train_seeds - 1)
    if fit_var > 0 and fit_df > 0:
        named["fit"] = (fit_var, fit_df)
    var, df = welch(list(named.values()))
    se = math.sqrt(var) if var == var else float("nan")
    t = mean / se if se and se == se else float("nan")
    p = float(2 * student.sf(abs(t), df)) if t == t and df > 0 else float("nan")
    return {"diff": mean, "se": se, "df": df, "t": t, "p": p, "detectable": t_crit(df) * se if se == se else se,
            "sets": k, "fit_se": math.sqrt(fit_var) if fit_df > 0 else 0.0, "parts": named, "per_side": per_side}


def welch(parts: list[tuple[float, float]]) -> tuple[float, float]:
    """A sum of independent variances, each with its degrees of freedom: the total and
    its Welch-Satterthwaite degrees of freedom (the first part's where it cannot be had)."""
    var = sum(v for v, _ in parts)
    df = (var ** 2 / sum(v ** 2 / f for v, f in parts) if var == var and var > 0 and all(f > 0 for _, f in parts)
          else float(parts[0][1]))
    return var, df


def fit_noise(a: dict, b: dict) -> tuple[float, int]:
    """What the FID-at-infinite-n fits add to the difference of two rows (result dicts
    with `fid_bias_draws`, from metrics.distances.fid_bias): the variance of the mean
    of the per-draw bias differences (draw i of both rows used the same subsets) and its
    degrees of freedom; (0, 0) where a row has no draws."""
    da, db = a.get("fid_bias_draws") or [], b.get("fid_bias_draws") or []
    k = min(len(da), len(db))
    if k < 2:
        return 0.0, 0
    d = np.asarray(da[:k], float) - np.asarray(db[:k], float)
    return float(d.var(ddof=1)) / k, k - 1


def paired_rows(a: dict, b: dict, key: str = "fid_inf", **kw) -> dict:
    """`paired` for two result rows: their per-set values of `key` (one value where a row
    has no sets); for FID at infinite n with the fits' own noise (`fit_noise`); `rows`:
    the rows' names (a combination of rows, `names`, gives each of them)."""
    va, vb = (list(r.get(f"{key}_sets") or [r[key]]) for r in (a, b))
    fit_var, fit_df = fit_noise(a, b) if key == "fid_inf" else (0.0, 0)
    names = [n for r in (a, b) for n in (r.get("names") or [r.get("name")]) if n]
    return {**paired(va, vb, fit_var=fit_var, fit_df=fit_df, **kw), "rows": names}


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
    return {**paired(a, b, train_sd=float(np.std(d_s, ddof=1)) / math.sqrt(t), train_seeds=t, per_side=t),
            "train_seeds": t}


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
    does not hold when value - t_0.95 se > bound. An exact value (se 0: a paper's
    number) is the value itself; an unknown spread (se NaN) decides nothing."""
    if value != value or se != se:
        return "inconclusive (no spread measured)"
    h = t_crit(df, 0.90) * se if se > 0 and df == df and df > 0 else 0.0
    if value + h <= bound:
        return "holds"
    if value - h > bound:
        return "does not hold"
    return "inconclusive"


def power80(se: float, df: float, one_sided: bool = False) -> float:
    """The smallest true difference a two-sided 5 % test with this standard error and
    these degrees of freedom detects with 80 % power: (t_0.975 + t_0.80) se. One-sided
    (the 90 % interval's end, TOST at X): the bound X it reaches with 80 % power when the
    true difference is 0, (t_0.95 + t_0.80) se."""
    from scipy.stats import t

    if se != se or not df or df != df or df <= 0:
        return float("nan")
    return float((t.ppf(0.95 if one_sided else 0.975, df) + t.ppf(0.80, df)) * se)


def projected(s: dict, sets: int, models: int = 1, train=None) -> tuple[float, float]:
    """The standard error and degrees of freedom `s` (a `paired` result) would have on
    `sets` seed sets: the seed-set variance shrinks as 1 / sets; the fits' own noise stays
    (more seed sets continue a row's fit, `diffdistill fid --bias-from`); the training
    noise, where both sides are trained, is `train(models)` ((variance, df) with `models`
    models a side; `measured_training`), else as measured (Welch-Satterthwaite)."""
    parts = s.get("parts") or {"sets": (s["se"] ** 2, s["df"])}
    if any(var != var for var, _ in parts.values()):
        return float("nan"), float("nan")
    out = [(var * s.get("sets", df + 1) / sets, sets - 1) if name == "sets" else
           train(models) if name == "train" and train else (var, df) for name, (var, df) in parts.items()]
    var, df = welch(out)
    return math.sqrt(var), df


def measured_training(s: dict):
    """The training noise of `s` with `models` models a side: its measured variance (of
    s["per_side"] models a side) shrinking as 1 / models, with at least models - 1
    degrees of freedom."""
    var, df = (s.get("parts") or {}).get("train", (float("nan"), 0))
    return lambda models: (var * s.get("per_side", 1) / models, max(df, models - 1))


def linear_cost(s: dict, set_seconds: float, model_seconds: float):
    """cost(sets, models): seconds beyond `s`'s own budget, at `set_seconds` per seed set
    of one model of every row compared and `model_seconds` per trained model of every
    trained row (every model evaluated on every seed set)."""
    k0, t0 = s.get("sets", 1), s.get("per_side", 1)
    return lambda sets, models: (sets * models - k0 * t0) * set_seconds + (models - t0) * model_seconds


MAX_SETS, MAX_MODELS = 400, 16  # the largest budget `reach` searches


def reach(s: dict, x: float, cost, train=None, max_models: int = MAX_MODELS, one_sided: bool = True) -> dict | None:
    """The cheapest budget, by `cost(sets, models)` in seconds, at which the comparison `s`
    bounds the effect by `x` with 80 % power (one-sided `power80` <= x) when the true
    effect is 0: seed sets (from s's up to MAX_SETS) and, where `train` says how training
    noise shrinks with models a side (`projected`), models a side up to `max_models`.
    Training noise does not shrink with more seed sets, so a comparison dominated by it
    needs training seeds. `one_sided=False`: the power to call an effect of x significant
    (two-sided), not to bound it. None when nothing within the limits reaches x."""
    if not x > 0 or s.get("se") != s.get("se"):
        return None
    k0, t0 = s.get("sets", 1), s.get("per_side", 1)
    best = None
    for models in range(t0, (max_models if train and "train" in (s.get("parts") or {}) else t0) + 1):
        for sets in range(max(k0, 2), MAX_SETS + 1):
            if power80(*projected(s, sets, models, train), one_sided=one_sided) <= x:
                c = cost(sets, models)
                if best is None or c < best["seconds"]:
                    best = {"sets": sets, "models": models, "seconds": c}
                break
    return best


def upper_bound(diff: float, se: float, df: float) -> float:
    """The upper end of the 90 % interval (one-sided 95 %): the largest effect in the
    positive direction the data leave open (TOST at this value holds)."""
    if se != se:
        return float("nan")
    return diff + (t_crit(df, 0.90) * se if se > 0 else 0.0)


def holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p values (family-wise error 5 % when
    each adjusted p is compared with 0.05); NaN stays NaN and is not counted."""
    idx = sorted((i for i, p in enumerate(ps) if p == p), key=lambda i: ps[i])
    m, out, run = len(idx), [float("nan")] * len(ps), 0.0
    for rank, i in enumerate(idx):
        run = max(run, min(1.0, (m - rank) * ps[i]))
        out[i] = run
    return out


def benjamini_hochberg(ps: list[float]) -> list[float]:
    """Benjamini-Hochberg q values of a family of p values (false discovery rate 5 % when
    each is compared with 0.05); NaN stays NaN and is not counted."""
    idx = sorted((i for i, p in enumerate(ps) if p == p), key=lambda i: ps[i])
    m, out, run = len(idx), [float("nan")] * len(ps), 1.0
    for rank in range(m - 1, -1, -1):
        i = idx[rank]
        run = min(run, ps[i] * m / (rank + 1))
        out[i] = run
    return out


def ratio(a, b) -> tuple[float, float]:
    """mean(A) / mean(B) over paired sets and its standard error (delta method on the
    per-set values, their covariance included); A and B are bias-free quantities. A mean
    at or below 0 on either side (FID at infinite n can extrapolate below 0 where the
    distance is within its noise of 0) has no meaningful ratio: NaN, NaN."""
    k = min(len(a), len(b))
    x, y = np.asarray(a[:k], float), np.asarray(b[:k], float)
    if not k or x.mean() <= 0 or y.mean() <= 0:
        return float("nan"), float("nan")
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
