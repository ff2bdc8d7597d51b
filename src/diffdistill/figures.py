"""Figures (matplotlib, PNG and PDF) from result files only: FID JSONs (each carries its
row's label, family and kind), model metadata, FID curves and sample files.

- fid_vs_nfe: FID at infinite n against NFE for every row of the main table (symmetric
  log y), bars the 95 % half-width of each point's paired difference to the reference
  (the main table's ±), the reference as a line;
- fid_vs_finetune: FID at infinite n against fine-tuning wall clock (SFD's Figure 1 analogue), each
  distilled method a curve through its NFE points;
- fid_curves: FID during training of the ablation students, one panel per factor
  (`plotting.plot_curves`);
- samples: the same seeds across methods and NFE, one row per (method, NFE);
- fid_vs_macs: FID at infinite n against network MACs per image, one series per method, the Pareto
  front (no other row is both cheaper and better) marked.

Style: one colour per method family (teacher baselines: one per solver), and the line
says what a series is: solid = distilled, dashed = training-free baseline (dash-dot
with AFS), dotted = a distillation target. `series_styles` checks that no two series
look alike.
"""
from __future__ import annotations

import math
from pathlib import Path

from .atomic import atomic_dir
from .errors import UserError
from .plotting import EXTRA_COLOURS, MARKERS, plain_log_axis, plot_curves, pyplot, save_figure
from .records import fine_tune_seconds, in_table, load_records, model_meta, read_profile, reference_halfwidth

SOLVER_COLOURS = {"euler": "0.45", "heun": "tab:brown", "dpmpp2m": "tab:olive", "dpmpp3m": "tab:pink",
                  "dpmpp3m_exact": "tab:gray", "ipndm": "goldenrod"}


def _solver(r: dict) -> str | None:
    return r.get("recipe", {}).get("solver")


def _afs(r: dict) -> bool:
    return bool(r.get("recipe", {}).get("afs"))


def series_styles(series: dict[str, list[dict]], colours: dict | None = None) -> dict[str, dict]:
    """label -> matplotlib style (`colours`: family -> colour, the methods'; other families
    get spare ones); raises if two series would share colour, line and marker."""
    styles, extra, seen, colours = {}, iter(EXTRA_COLOURS), {}, dict(colours or {})
    for label, recs in series.items():
        r = recs[0]
        kind, fam = r.get("kind", "distilled"), r.get("family", "")
        if fam == "teacher":
            colour = SOLVER_COLOURS.get(_solver(r), "0.3")
        else:
            colour = colours.get(fam) or colours.setdefault(fam, next(extra, "k"))
        ls = {"baseline": "-." if _afs(r) else "--", "target": ":", "reference": "--"}.get(kind, "-")
        marker = MARKERS[sum(1 for k in seen.values() if k[0] == colour) % len(MARKERS)]  # also tells points apart
        key = (colour, ls, marker)
        if key in seen.values():
            raise UserError(f"figure series '{label}' would look like another one")
        seen[label] = key
        styles[label] = {"color": colour, "ls": ls, "marker": marker}
    return styles


def _series(records) -> dict[str, list[dict]]:
    """label -> records sorted by NFE."""
    by: dict[str, list[dict]] = {}
    for r in records:
        by.setdefault(r["label"], []).append(r)
    return {k: sorted(v, key=lambda r: r["nfe"]) for k, v in by.items()}


def _q(r: dict) -> float:
    """The quality a figure plots: FID at infinite n (FID at n for files without it)."""
    return r.get("fid_inf", r["fid"])


def _se(r: dict) -> float:
    sd = r.get("fid_inf_std", float("nan"))
    return 0.0 if sd != sd else sd / math.sqrt(r.get("seed_sets", 1))


def fid_vs_nfe(ax, series: dict, styles: dict) -> None:
    """FID at infinite n against NFE, one line per series; the bars: the 95 % half-width
    of each point's paired difference to the reference row (the main table's ±), else
    the standard error over the seed sets."""
    from matplotlib.ticker import MaxNLocator

    ref = next((recs[0] for recs in series.values() if recs[0].get("kind") == "reference"), None)
    for label, recs in series.items():
        st = styles[label]
        if recs[0].get("kind") == "reference":
            r = recs[0]
            ax.axhline(_q(r), color="k", ls="--", lw=1, label=f"{label.removesuffix(' (reference)')}: "
                                                                 f"reference sampler, NFE {r['nfe']}")
            continue
        bars = [reference_halfwidth(r, ref) if ref is not None and "fid_inf" in r else _se(r) for r in recs]
        ax.errorbar([r["nfe"] for r in recs], [_q(r) for r in recs], yerr=[0.0 if b != b else b for b in bars],
                    ms=4, lw=1.4 if st["ls"] == "-" else 1.0, capsize=2, label=label, **st)
    ax.set_yscale("symlog", linthresh=1.0)  # FID at infinite n may reach 0 (or just below it)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("NFE (network evaluations per sample)")
    ax.set_ylabel("FID at infinite n (lower is better)" + ("; bars: 95 % of the paired difference to the reference"
                                                           if ref is not None else "; ± standard error"))
    ax.grid(True, which="both", alpha=0.3)


def fid_vs_finetune(ax, series: dict, styles: dict) -> int:
    n = 0
    for label, recs in series.items():
        if recs[0].get("kind") == "reference":
            ax.axhline(_q(recs[0]), color="k", ls="--", lw=1, label=label)
            continue
        pts = [(w, _q(r), r["nfe"]) for r in recs if r.get("kind") == "distilled"
               and (w := fine_tune_seconds(model_meta(r)))]
        if not pts:
            continue
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ms=4, label=label, **styles[label])
        same_x: dict[float, int] = {}
        for w, f, k in pts:  # points of one model (SFD-v) share x: stack their labels
            i = same_x[w] = same_x.get(w, -1) + 1
            ax.annotate(f"{k}", (w, f), textcoords="offset points", xytext=(4, 3 + 8 * i), fontsize=7,
                        color=styles[label]["color"])
        n += 1
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_axis(ax.xaxis)
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("fine-tuning wall clock (s, to reach the model; labels: NFE)")
    ax.set_ylabel("FID at infinite n (lower is better)")
    ax.grid(True, which="both", alpha=0.3)
    return n


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats in both cost and FID (lower is better in both)."""
    front, best = [], float("inf")
    for x, y in sorted(points):
        if y < best:
            front.append((x, y))
            best = y
    return front


def fid_vs_macs(ax, series: dict, styles: dict, profile: dict) -> int:
    """FID against network MACs per image, one series per method, the Pareto front marked."""
    pts, n = [], 0
    for label, recs in series.items():
        xy = [(profile[r["name"]]["macs_per_image"] / 1e6, _q(r), r["nfe"]) for r in recs if r.get("name") in profile]
        if not xy:
            continue
        xy.sort()
        ax.plot([p[0] for p in xy], [p[1] for p in xy], ms=4, label=label, **styles[label])
        pts += [(x, y) for x, y, _ in xy]
        n += 1
    front = pareto_front(pts)
    ax.plot([p[0] for p in front], [p[1] for p in front], color="k", lw=5, alpha=0.15, zorder=0,
            label="Pareto front")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_axis(ax.xaxis)
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("network MACs per image (millions; FlopCounterMode FLOPs / 2)")
    ax.set_ylabel("FID at infinite n (lower is better)")
    ax.grid(True, which="both", alpha=0.3)
    return n


def plot_samples(samples: list[tuple[str, str]], out: Path, count: int = 10) -> None:
    """samples: (row label, samples .npz); every file holds the same seeds, first `count` shown."""
    import numpy as np
    plt = pyplot()
    fig, axes = plt.subplots(len(samples), 1, figsize=(count * 0.5 + 2.5, 0.6 * len(samples) + 0.3), squeeze=False)
    seeds0 = None
    for ax, (label, path) in zip(axes[:, 0], samples):
        with np.load(path) as z:
            imgs, seeds = z["images"][:count], z["seeds"][:count]
        if seeds0 is None:
            seeds0 = seeds
        elif not np.array_equal(seeds, seeds0):
            raise UserError(f"{path} holds seeds {seeds.tolist()}, not {seeds0.tolist()}: rows must share seeds")
        c, h, w = imgs.shape[1:]
        strip = np.concatenate([np.pad(im.transpose(1, 2, 0), ((1, 1), (1, 1), (0, 0)), constant_values=255)
                                for im in imgs], axis=1)
        ax.imshow(strip[..., 0] if c == 1 else strip, cmap="gray" if c == 1 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    axes[0, 0].set_title(f"seeds {seeds0.tolist()[0]}..{seeds0.tolist()[-1]}, same in every row", fontsize=8)
    save_figure(fig, out, "samples")


def _legend_right(ax) -> None:
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))


def write_figures(fid_files, out_dir, floor=None, profile=None, colours: dict | None = None) -> None:
    """Every figure into out_dir, atomically as a whole folder (`colours`: family -> colour)."""
    from .curves import read_curve
    plt = pyplot()
    records = load_records(fid_files)
    series = _series(in_table(records, "main"))
    if not series:
        raise UserError("no FID results to plot")
    styles = series_styles(series, colours)
    with atomic_dir(out_dir, "figures") as tmp:
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        fid_vs_nfe(ax, series, styles)
        _legend_right(ax)
        ax.set_title("FID at infinite n against NFE")
        save_figure(fig, tmp, "fid_vs_nfe")
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        if fid_vs_finetune(ax, series, styles):
            _legend_right(ax)
            ax.set_title("FID against fine-tuning time")
            save_figure(fig, tmp, "fid_vs_finetune")
        else:
            plt.close(fig)
        if profile:
            fig, ax = plt.subplots(figsize=(7.5, 4.5))
            if fid_vs_macs(ax, series, styles, {r["name"]: r for r in read_profile(profile)}):
                _legend_right(ax)
                ax.set_title("FID against compute per image")
                save_figure(fig, tmp, "fid_vs_macs")
            else:
                plt.close(fig)
        read = {r["name"]: read_curve(r["meta"]["curve"]) for r in records if r.get("meta", {}).get("curve")}
        curves = [(r["meta"]["factor_name"] if r["meta"]["factor"] != "default" else "default", r["meta"]["value"],
                   read[r["name"]]) for r in in_table(records, "ablations") if r["meta"].get("curve")]
        if curves:
            plot_curves(curves, tmp)
        # every student's curve in long form, for DVC's plot of the training curves (dvc.yaml)
        long = [{"student": name, "iteration": p["iteration"], "fid": p["fid"]}
                for name, curve in read.items() for p in curve["points"]]
        if long:
            import pandas as pd

            pd.DataFrame(long).to_csv(tmp / "curves_long.csv", index=False, float_format="%.4f")
        rows = [r for r in records if r.get("figure")]
        if rows:
            plot_samples([(f"{r['label']} NFE {r['nfe']}", r["samples"]) for r in rows], tmp)
