"""Few-step distillation at equal fine-tuning compute: SFD, its second stage, PD, ECT, CD
and O2MKD x SFD on one axis of cumulative fine-tuning seconds.

Each method's student is trained again here, one run at a time with every core, from the
command its model's metadata records (the arguments actually used), at three learning
rates (the config's times `--lr-factors`, 1 always among them), each as its config
trains it (with lr_schedule plateau: until its validation curve is flat). The learning
rate whose curve ends lowest on the curve seeds wins (never the evaluation seeds). Work
before a run's first iteration counts: the trajectory caches it reads (the teacher's
work), and the earlier stages or PD rounds its teacher took, through the chain of
teachers' metadata; those clocks are the ones the main and extended jobs measured, beside
other jobs on the cores.

Along each winner's curve (FID on the curve seeds, brought to infinite n on the sample
side with its row's fitted bias slope, `fid_bias_slope_n`): the best FID within 1, 2, 4
and 8 times SFD's NFE-2 time, the time to a common quality (the reference method's final
FID at that NFE: SFD at NFE 2, the second stage at NFE 1) or "not reached within" the
whole run, with teacher network evaluations and optimizer steps beside the seconds.
The final models of the main job (the config's learning rate) are compared paired on the
evaluation seed sets (their rows' metrics files): FID at infinite n minus SFD's at NFE 2
(NFE 1: minus the second stage's), with its SE. SFD against PD at equal quality keeps its
two crossings and the bootstrap of the curves' noise (the claim reads them).

    python -m benchmarks.equal_compute --fid results/fid/students/*/*/nfe*/fid.json \\
        --out results/benchmark-runs
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

from .common import run, run_child, write

from diffdistill.curves import read_curve
from diffdistill.provenance import read_meta

BUDGETS = (1, 2, 4, 8)
# (key, label, models: {NFE: model}, the curve value of each NFE); the first is the reference of NFE 2
METHODS = (
    ("sfd", "SFD", {2: "results/students/sfd/default/nfe2/model.pt"}, {2: "fid"}),
    ("sfd2", "SFD second stage", {1: "results/students/sfd2/default/nfe1/model.pt"}, {1: "fid"}),
    ("pd", "PD", {2: "results/students/pd/default/nfe2/model.pt", 1: "results/students/pd/default/nfe1/model.pt"},
     {2: "fid", 1: "fid"}),
    ("ct", "ECT", {1: "results/students/cd/ct/model.pt", 2: "results/students/cd/ct/model.pt"},
     {1: "fid_nfe1", 2: "fid_nfe2"}),
    ("cd", "CD", {1: "results/students/cd/cd/model.pt", 2: "results/students/cd/cd/model.pt"},
     {1: "fid_nfe1", 2: "fid_nfe2"}),
    ("o2sfd", "O2MKD x SFD", {2: "results/students/o2sfd/N2/nfe2/model.pt"}, {2: "fid"}),
)
REFERENCE = {2: "sfd", 1: "sfd2"}  # the common quality of each NFE: this method's final FID
SKIP = ("out", "curve_out", "tensorboard_dir", "threads", "quiet", "restart", "max_iters_this_run", "lr")
MIN_TAIL = 5  # residuals a curve's noise is read from; fewer: no spread measured


# ---- costs along the chain of teachers -------------------------------------------------

def chain_cost(model: str) -> dict:
    """Seconds, teacher NFE and optimizer steps to make `model` from the trained teacher:
    what its run stood on (`before_run`) and the run itself. Nothing for the trained
    teacher."""
    from diffdistill.atomic import meta_path

    if not meta_path(model).exists() or read_meta(model).get("method") in (None, "teacher"):
        return {"seconds": 0.0, "teacher_nfe": 0, "optimizer_steps": 0}
    m = read_meta(model)
    start = before_run(m)
    return {"seconds": start["seconds"] + m["wall_time"], "teacher_nfe": start["teacher_nfe"] + own_teacher_nfe(m),
            "optimizer_steps": start["optimizer_steps"] + m["optimizer_steps"]}


def before_run(meta: dict) -> dict:
    """What a run's first iteration stands on: its teacher's chain (a PD round's earlier
    rounds, the second stage's stage-1 student) and the trajectory caches it reads."""
    from diffdistill.tables.cost import cache_seconds

    up = chain_cost(meta["args"]["teacher"])
    return {"seconds": up["seconds"] + (cache_seconds(meta) or 0.0),
            "teacher_nfe": up["teacher_nfe"] + _cache_nfe(meta), "optimizer_steps": up["optimizer_steps"]}


def own_teacher_nfe(meta: dict) -> int:
    """Teacher network evaluations inside a run (PD's, CD's), not those of its caches."""
    return max(0, int(meta.get("teacher_nfe", 0)) - _cache_nfe(meta))


def _cache_nfe(meta: dict) -> int:
    from diffdistill.tables.cost import cache_total

    return int(cache_total(meta, "teacher_nfe") or 0)


# ---- the runs ------------------------------------------------------------------------

def command(meta: dict, out: Path, lr: float, threads: int, teacher: str | None = None) -> list[str]:
    """The training command of a model's metadata, at learning rate `lr`, writing to `out`."""
    from diffdistill.flagtext import flags

    args = {k: v for k, v in meta["args"].items() if k not in SKIP}
    if teacher:
        args["teacher"] = teacher
    args.update(lr=lr, out=str(out / "model.pt"), curve_out=str(out / "fid_curve.json"), threads=threads)
    return [sys.executable, "-m", "diffdistill", "train", meta["method"], *shlex.split(flags(args)), "--quiet"]


def train(meta: dict, out: Path, lr: float, threads: int, teacher: str | None = None) -> Path | None:
    """One run; a finished run of the same arguments is kept (a rerun of the benchmark
    reuses it, a changed config trains again). None where training failed at this rate:
    a divergence is a result of the tuning, not the benchmark's end."""
    import subprocess

    model = out / "model.pt"
    done = model.exists() and (out / "fid_curve.json").exists()
    if done and run_args(read_meta(model)) == run_args(meta, lr, teacher):
        return model
    print(f"equal_compute: {meta['method']} lr {lr:g} -> {out}", file=sys.stderr)
    try:
        run_child(command(meta, out, lr, threads, teacher))
    except subprocess.CalledProcessError as e:
        print(f"equal_compute: {meta['method']} lr {lr:g} failed (exit {e.returncode})", file=sys.stderr)
        return None
    return model


def run_args(meta: dict, lr: float | None = None, teacher: str | None = None) -> dict:
    """The arguments that shape a run (its metadata's, run settings aside), with `lr` and
    `teacher` where given."""
    args = {k: v for k, v in meta["args"].items() if k not in SKIP or k == "lr"}
    return {**args, **({"lr": lr} if lr is not None else {}), **({"teacher": teacher} if teacher else {})}


def on_axis(model: Path, key: str, slope: float | None, start: dict) -> list[dict]:
    """A run's curve points on cumulative seconds, teacher NFE and optimizer steps (its
    counters spread evenly over its iterations), FID at infinite n on the sample side."""
    curve, meta = read_curve(model.parent / "fid_curve.json"), read_meta(model)
    n, iters = curve["num_samples"], max(1, meta["iterations"])
    nfe = own_teacher_nfe(meta)
    return [{"iteration": p["iteration"], "seconds": start["seconds"] + p["wall_time"],
             "teacher_nfe": start["teacher_nfe"] + nfe * p["iteration"] / iters,
             "optimizer_steps": start["optimizer_steps"] + meta["optimizer_steps"] * p["iteration"] / iters,
             "fid": p[key] - (slope or 0.0) / n} for p in curve["points"] if key in p]


# ---- reading curves --------------------------------------------------------------------

def time_to(points: list[dict], target: float) -> float | None:
    """Seconds at which the curve first reaches `target` (linear between points)."""
    if points and points[0]["fid"] <= target:
        return points[0]["seconds"]
    for a, b in zip(points, points[1:]):
        if b["fid"] <= target < a["fid"]:
            return a["seconds"] + (a["fid"] - target) / (a["fid"] - b["fid"]) * (b["seconds"] - a["seconds"])
    return None


def best_within(points: list[dict], seconds: float) -> float | None:
    """The lowest FID of the points reached within `seconds` (None: none yet)."""
    got = [p["fid"] for p in points if p["seconds"] <= seconds]
    return min(got) if got else None


def smooth_and_noise(points: list[dict]) -> tuple[np.ndarray, float]:
    """A curve's running mean of three (two at the ends) and the spread of its points
    around it over its last half (an interior residual has variance 2/3 of the points'
    own, an end one 1/2); NaN with fewer than MIN_TAIL residuals."""
    y = np.array([p["fid"] for p in points], float)
    smooth = np.array([y[max(0, i - 1):i + 2].mean() for i in range(len(y))])
    share = np.array([0.5 if i in (0, len(y) - 1) else 2 / 3 for i in range(len(y))])
    tail = ((y - smooth) ** 2 / share)[len(y) // 2:]
    return smooth, float(math.sqrt(tail.mean())) if len(tail) >= MIN_TAIL else float("nan")


def final(points: list[dict]) -> float:
    """A curve's end, read from its running mean (one point's noise less)."""
    return float(smooth_and_noise(points)[0][-1]) if points else float("nan")


def _draw(points, mu, sd, rng):
    """One draw of a curve: its running mean plus Gaussian noise of its own spread."""
    return [{**p, "fid": float(m + sd * e)} for p, m, e in zip(points, mu, rng.standard_normal(len(points)))]


def bootstrap(sfd: list[dict], pd: list[dict], reps: int = 2000, seed: int = 0, bound: float = 2.0) -> dict:
    """PD's time to SFD's final FID over SFD's, over `reps` draws of both curves' point
    noise (not the spread between training runs: a lower limit on the uncertainty). A
    draw where PD never gets there counts at its lower bound (its whole chain); one where
    SFD starts at its final FID is left out and counted (`sfd_at_start`). Returns the 5 %
    and 95 % points (None: unbounded), the share at or below `bound` (the one-sided p of
    'faster than bound') and at or above it (that of 'not faster')."""
    rng = np.random.default_rng(seed)
    (s_mu, s_sd), (p_mu, p_sd) = smooth_and_noise(sfd), smooth_and_noise(pd)
    if s_sd != s_sd or p_sd != p_sd:
        return {"reps": 0, "note": f"a curve has fewer than {2 * MIN_TAIL} points: no noise measured"}
    ratios, censored, at_start = [], [], 0
    for _ in range(reps):
        s_draw, p_draw = _draw(sfd, s_mu, s_sd, rng), _draw(pd, p_mu, p_sd, rng)
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
            "censored_share": float(c.mean()), "sfd_at_start": at_start}


def at_budget(sfd: list[dict], other: list[dict], seconds: float, set_sd: float, df: float) -> dict | None:
    """SFD's final FID minus the other curve's at its last point within `seconds`, both
    read from their running means (no minimum over points: that would choose on the
    noise), in the form of `stats.paired`. Both curves sample the same curve seeds, one
    set of them: the difference carries one seed set's variance of the difference
    (`set_sd`, the final models' paired per-set spread on the evaluation seeds, scaled to
    the curve's n; `df` its degrees of freedom) besides the curves' own point noise (a
    running mean of three: sd^2 / 3 each). None where the other curve has no point within
    it or a spread is unknown."""
    from scipy.stats import t as student

    (mu_s, sd_s), (mu_o, sd_o) = smooth_and_noise(sfd), smooth_and_noise(other)
    within = [m for p, m in zip(other, mu_o) if p["seconds"] <= seconds]
    if not within or sd_s != sd_s or sd_o != sd_o or set_sd != set_sd:
        return None
    diff, se = float(mu_s[-1] - within[-1]), math.sqrt(set_sd ** 2 + (sd_s ** 2 + sd_o ** 2) / 3)
    t = diff / se
    return {"diff": diff, "se": se, "df": df, "t": t, "p": float(2 * student.sf(abs(t), df)),
            "detectable": float(student.ppf(0.975, df)) * se, "sets": 1, "rows": [], "seconds": seconds}


def set_spread(a: dict | None, b: dict | None, n: int) -> tuple[float, float]:
    """The spread of one seed set's paired difference between two rows' FID at infinite n
    (their per-set values on the evaluation seeds), scaled to `n` samples, and its degrees
    of freedom; NaN without both rows."""
    if not a or not b or len(a.get("fid_inf_sets") or []) < 2:
        return float("nan"), 0.0
    k = min(len(a["fid_inf_sets"]), len(b["fid_inf_sets"]))
    d = np.asarray(a["fid_inf_sets"][:k], float) - np.asarray(b["fid_inf_sets"][:k], float)
    return float(d.std(ddof=1) * math.sqrt(a["num_samples"] / n)), float(len(d) - 1)


def crossing(name: str, target_of: str, target: float, mine: list[dict], theirs: list[dict]) -> dict:
    """The seconds `mine` needs to reach `target` against those `theirs` needed."""
    t_mine, t_theirs = time_to(mine, target), time_to(theirs, target)
    return {"method": name, "target": f"{target_of}'s final FID", "target FID": target,
            "s to target": t_mine, "reached": t_mine is not None, "s run in all": mine[-1]["seconds"],
            "other method s to target": t_theirs,
            "time / other method time": (t_mine / t_theirs) if t_mine is not None and t_theirs else None}


def sfd_vs_pd(sfd: list[dict], pd: list[dict], reps: int) -> dict:
    """The claim's quantities: PD's time to SFD's final NFE-2 FID over SFD's (a lower bound
    where PD's whole chain stops short of it), and SFD's time to PD's final FID."""
    pd_to_sfd = crossing("PD (all rounds)", "SFD", sfd[-1]["fid"], pd, sfd)
    sfd_to_pd = crossing("SFD (cache included)", "PD", pd[-1]["fid"], sfd, pd)
    t_sfd = pd_to_sfd["other method s to target"]
    reached = pd_to_sfd["reached"]
    ratio = pd_to_sfd["time / other method time"] if reached else (pd[-1]["seconds"] / t_sfd if t_sfd else None)
    return {"ratio": ratio, "ratio_is_lower_bound": not reached, "target_fid": sfd[-1]["fid"], "sfd_seconds": t_sfd,
            "pd_total_seconds": pd[-1]["seconds"], "pd_to_sfd_quality": pd_to_sfd, "sfd_to_pd_quality": sfd_to_pd,
            "bootstrap": bootstrap(sfd, pd, reps=reps), "fid_scale": "at infinite n (sample side)"}


# ---- the benchmark ---------------------------------------------------------------------

def tune(key: str, models: dict, keys: dict, factors, threads: int, root: Path, slopes: dict) -> dict | None:
    """Every learning rate's runs of one method: {lr: {NFE: points}}, and the winner (the
    lowest end of the curve of its largest NFE, on the curve seeds). No factors: the built
    models themselves, at the config's rate. None where no run has a curve."""
    top = max(models)
    meta = read_meta(models[top])
    if not meta["args"].get("curve_every"):
        return None  # no curve to put on the axis: nothing to train
    runs = {}
    for f in sorted(set(factors) | {1.0}) if factors else [None]:
        lr = meta["args"]["lr"] * (f or 1.0)
        folder = root / key / f"lr{lr:.3g}"
        if f is None:  # the built models, their clocks as they are
            got = dict(models)
        elif key == "pd":  # the round to 2 steps, then the round to 1 from it, both at this rate
            m2 = train(meta, folder / "nfe2", lr, threads)
            m1 = train(read_meta(models[1]), folder / "nfe1", lr, threads, teacher=str(m2)) if m2 and 1 in models \
                else None
            got = {2: m2, **({1: m1} if m1 else {})}
        else:
            got = dict.fromkeys(models, train(meta, folder, lr, threads))
        curves = {n: on_axis(Path(m), keys[n], slopes.get(n, {}).get(key), before_run(read_meta(m)))
                  for n, m in got.items() if m}
        if curves.get(top):
            runs[lr] = {n: pts for n, pts in curves.items() if pts}
    if not runs:
        return None
    end = {lr: final(r[top]) for lr, r in runs.items()}
    winner = min(runs, key=lambda lr: end[lr] if end[lr] == end[lr] else math.inf)  # a NaN end never wins
    return {"runs": runs, "winner": winner, "config_lr": meta["args"]["lr"]}


def paired_to_reference(rows: dict, key: str, nfe: int) -> str:
    """The main job's model (the config's learning rate) minus the reference method's, FID
    at infinite n paired over the evaluation seed sets, as text."""
    from diffdistill import stats

    a, b = rows.get((key, nfe)), rows.get((REFERENCE[nfe], nfe))
    if a is None:
        return "—"
    if b is None or a is b:
        return f"{a['fid_inf']:.2f}"
    return f"{a['fid_inf']:.2f} ({stats.fmt(stats.paired_rows(a, b))})"


def plot(curves: dict, out: Path) -> None:
    """FID at infinite n against cumulative fine-tuning seconds, NFE 1 and NFE 2; the y range
    runs to four times the worst final value, so the first points (the start, far above)
    leave the curves readable."""
    from diffdistill.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, nfe in zip(axes, (1, 2)):
        shown = {label: pts for (label, n), pts in curves.items() if n == nfe and pts}
        for label, pts in shown.items():
            ax.plot([p["seconds"] for p in pts], [p["fid"] for p in pts], marker=".", label=label)
        if shown:
            low = min(p["fid"] for pts in shown.values() for p in pts)
            ax.set_ylim(min(low, 0.0) - 1, max(4 * max(final(pts) for pts in shown.values()), 10.0))
            ax.legend(fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("fine-tuning seconds, cumulative")
        ax.set_ylabel(f"FID at infinite n, NFE {nfe} (curve seeds)")
        ax.set_title(f"NFE {nfe}")
    fig.tight_layout()
    save_figure(fig, out, "equal_compute")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fid", nargs="*", default=[], help="the rows' metrics files (fid.json): bias slopes, paired "
                    "comparisons of the main job's models")
    ap.add_argument("--lr-factors", nargs="*", type=float, default=[1 / 3, 1.0, 3.0],
                    help="learning rates tried per method, as factors of the config's (default: 1/3 1 3; none: "
                         "the built models' own curves and clocks)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads of each run")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap draws of the curves' noise")
    ap.add_argument("--work", help="folder of the runs (default: <out>/equal_compute)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    from diffdistill.records import load_records

    rows = {}
    for r in load_records(a.fid):
        for key, _, models, _ in METHODS:
            if models.get(r["nfe"]) == r.get("model"):
                rows[(key, r["nfe"])] = r
    slopes = {n: {k: r.get("fid_bias_slope_n") for (k, nn), r in rows.items() if nn == n} for n in (1, 2)}
    present = [(k, label, m, keys) for k, label, m, keys in METHODS if all(Path(p).exists() for p in m.values())]
    from diffdistill.errors import UserError

    if not present or present[0][0] != "sfd":  # the budgets' unit: checked before any training
        raise UserError(f"file not found: {METHODS[0][2][2]}")
    if not read_meta(METHODS[0][2][2])["args"].get("curve_every"):
        raise UserError(f"{METHODS[0][2][2]} has no FID curve (sfd.curve_every 0): nothing to put on the time axis")
    work = Path(a.work or Path(a.out) / "equal_compute")
    tuned = {k: tune(k, m, keys, a.lr_factors, a.threads, work, slopes) for k, _, m, keys in present}
    no_curve = [k for k, t in tuned.items() if t is None]  # curve_every 0: not on the axis
    tuned = {k: t for k, t in tuned.items() if t is not None}
    labels = {k: label for k, label, _, _ in present}
    best = {(k, n): pts for k, t in tuned.items() for n, pts in t["runs"][t["winner"]].items()}
    base = best.get(("sfd", 2))
    if not base:
        raise UserError("every SFD run failed: see the runs in " + str(work / "sfd"))
    unit = base[-1]["seconds"]  # SFD's NFE-2 time: the budgets' unit
    table = []
    for (k, n), pts in sorted(best.items(), key=lambda kv: (-kv[0][1], [m[0] for m in present].index(kv[0][0]))):
        ref = best.get((REFERENCE[n], n))
        level = final(ref) if ref else float("nan")
        t = time_to(pts, level) if ref else None
        tried = ", ".join(f"{lr:.2g}: {final(r[n]):.1f}" for lr, r in tuned[k]["runs"].items() if n in r)
        row = {"method": labels[k], "NFE": n, "lr (won)": f"{tuned[k]['winner']:.2g}", "final FID inf per lr": tried,
               "fine-tune s": pts[-1]["seconds"], "teacher NFE": int(pts[-1]["teacher_nfe"]),
               "optimizer steps": int(pts[-1]["optimizer_steps"])}
        for b in BUDGETS:
            got = best_within(pts, b * unit)
            row[f"best within {b}x"] = "—" if got is None else f"{got:.2f}"
        row["s to common quality"] = (f"{t:.0f}" if t is not None else
                                      f"not reached within {pts[-1]['seconds']:.0f}") if ref else "—"
        row["FID inf, evaluation seeds (config lr), minus SFD's (NFE 1: the second stage's)"] = paired_to_reference(rows, k, n)
        table.append(row)
    extra = sfd_vs_pd(base, best[("pd", 2)], a.reps) if ("pd", 2) in best else {"ratio": None}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:  # the figure appears whole or not at all
        plot({(f"{labels[k]} (lr {tuned[k]['winner']:.2g})", n): p for (k, n), p in best.items()}, Path(tmp))
        for ext in ("png", "pdf"):
            os.replace(Path(tmp) / f"equal_compute.{ext}", out / f"equal_compute.{ext}")
    levels = {n: final(best[(REFERENCE[n], n)]) for n in (1, 2) if (REFERENCE[n], n) in best}
    # the claims' equal-time readings: the config's learning rate, as the main job's rows
    config = {k: t["runs"][t["config_lr"]] for k, t in tuned.items() if t["config_lr"] in t["runs"]}
    config_seconds = {k: r[max(r)][-1]["seconds"] for k, r in config.items()}
    budgets = {"ct@1.6": ("ct", 1.6), "cd@1": ("cd", 1.0)}
    curve_n = read_curve(Path(METHODS[0][2][2]).parent / "fid_curve.json")["num_samples"]
    at = {name: at_budget(config["sfd"][2], config[k][2], b * config_seconds["sfd"],
                          *set_spread(rows.get(("sfd", 2)), rows.get((k, 2)), curve_n))
          for name, (k, b) in budgets.items() if k in config and "sfd" in config}
    head = ("" if a.lr_factors else "the built models' curves and clocks (no runs of its own, taken beside other "
            "jobs); ") + (f"budget unit: SFD's NFE-2 time, {unit:.0f} s; common quality: "
            + ", ".join(f"NFE {n} FID inf {v:.2f} ({labels[REFERENCE[n]]})" for n, v in levels.items()))
    if extra.get("ratio"):
        head += (f"; PD / SFD time to SFD's final NFE-2 FID: {'>' if extra['ratio_is_lower_bound'] else ''}"
                 f"x{extra['ratio']:.1f} (papers: ~267x)")
    write(a.out, "equal_compute", "Few-step distillation at equal fine-tuning compute", {
        **extra, "no_curve": no_curve, "lr_factors": a.lr_factors, "unit_seconds": unit, "levels": levels, "config_seconds": config_seconds, "at_budget": at, "headline": head, "figure": "equal_compute.png",
        "curves": {f"{k}/nfe{n}": p for (k, n), p in best.items()},
        "tuning": {k: {"winner": t["winner"], "config_lr": t["config_lr"],
                       "final": {f"{lr:.3g}": {n: final(p) for n, p in r.items()} for lr, r in t["runs"].items()}}
                   for k, t in tuned.items()}}, table,
        "Seconds are cumulative fine-tuning seconds on this machine: each run here alone with every core; the "
        "trajectory caches and earlier stages (PD's rounds, the second stage's stage-1 student) it stands on count "
        "before its first iteration, at the clocks the main and extended jobs measured beside other jobs. "
        "ECT's and CD's NFE-2 curve points are at the best re-noise level on the curve seeds (optimistic by that "
        "choice; their final models are then compared on the evaluation seeds). Curve FIDs are on the curve seeds, at infinite n on the sample side; each method's learning "
        "rate is the one of its lowest final curve point. The last column compares the main job's models (the "
        "config's learning rate) on the evaluation seed sets, paired, with the SE of the difference. "
        "Figure: equal_compute.png.")


if __name__ == "__main__":
    run(main)
