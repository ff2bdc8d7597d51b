"""Figures (matplotlib, PNG and PDF) from result files only: FID JSONs, model metadata,
FID curves and sample files.

- fid_vs_nfe: FID against NFE for every method (log y), the reference as a line and the
  real-vs-real floor as a band;
- fid_vs_finetune: FID against fine-tuning wall clock (SFD's Figure 1 analogue), each
  method a curve through its NFE points;
- fid_curves: FID during training of the ablation students, one panel per factor;
- samples: the same seeds across methods and NFE, one row per (method, NFE).
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from .io import UserError, atomic_dir, read_json


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out: Path, name: str) -> None:
    for ext in ("png", "pdf"):
        fig.savefig(out / f"{name}.{ext}", dpi=150, bbox_inches="tight",
                    metadata={"CreationDate": None} if ext == "pdf" else {"Software": None})
    _plt().close(fig)


def _series(fid_files) -> dict[str, list[dict]]:
    """label -> records sorted by NFE."""
    by = defaultdict(list)
    for f in fid_files:
        r = read_json(f)
        if r.get("nfe") is None:
            continue
        by[r["label"]].append(r)
    return {k: sorted(v, key=lambda r: r["nfe"]) for k, v in by.items()}


def _wall(r) -> float | None:
    m = r.get("model")
    if not m or not Path(m).exists():
        return None
    meta = read_json(m)
    return meta.get("cumulative_wall_time", meta.get("wall_time"))


def fid_vs_nfe(ax, series: dict, floor: dict | None, reference_label: str | None) -> None:
    for label, recs in series.items():
        if label == reference_label:
            r = recs[0]
            ax.axhline(r["fid"], color="k", ls="--", lw=1, label=f"{label} (NFE {r['nfe']})")
            continue
        ax.plot([r["nfe"] for r in recs], [r["fid"] for r in recs], marker="o", ms=4, label=label)
    if floor:
        lo, hi = floor["fid"] - floor.get("fid_std", 0), floor["fid"] + floor.get("fid_std", 0)
        ax.axhspan(max(lo, 1e-3), hi, color="0.85", label="floor (real vs real)")
    ax.set_yscale("log")
    ax.set_xlabel("NFE")
    ax.set_ylabel("FID")
    ax.grid(True, which="both", alpha=0.3)


def fid_vs_finetune(ax, series: dict, reference_label: str | None) -> int:
    n = 0
    for label, recs in series.items():
        pts = [(w, r["fid"], r["nfe"]) for r in recs if (w := _wall(r))]
        if label == reference_label:
            ax.axhline(recs[0]["fid"], color="k", ls="--", lw=1, label=label)
            continue
        if not pts:
            continue
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, label=label)
        for w, f, k in pts:
            ax.annotate(f"{k}", (w, f), textcoords="offset points", xytext=(3, 3), fontsize=7)
        n += 1
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("fine-tuning wall clock (s, to reach the model; labels: NFE)")
    ax.set_ylabel("FID")
    ax.grid(True, which="both", alpha=0.3)
    return n


def plot_curves(curves: list[tuple[str, str, dict]], out: Path) -> None:
    """curves: (factor, value, curve dict); the default's curve appears in every panel."""
    plt = _plt()
    default = [c for f, _, c in curves if f == "default"]
    factors = [f for f in dict.fromkeys(f for f, _, _ in curves) if f != "default"] or ["default"]
    cols = min(4, len(factors))
    rows = math.ceil(len(factors) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, factor in zip(axes.flat, factors):
        for c in default:
            pts = c["points"]
            ax.plot([p["iteration"] for p in pts], [p["fid"] for p in pts], color="k", lw=1.5, label="default")
        for f, v, c in curves:
            if f == factor and f != "default":
                pts = c["points"]
                ax.plot([p["iteration"] for p in pts], [p["fid"] for p in pts], marker=".", label=f"{v}")
        ax.set_title(factor, fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(factors):]:
        ax.axis("off")
    axes[0][0].set_ylabel("FID (curve seeds)")
    fig.suptitle("FID during training (SFD ablations; curve seeds)", fontsize=10)
    _save(fig, out, "fid_curves")


def plot_samples(samples: list[tuple[str, str]], out: Path, count: int = 10) -> None:
    """samples: (row label, samples .npz); every file holds the same seeds, first `count` shown."""
    import numpy as np
    plt = _plt()
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
    _save(fig, out, "samples")


def write_figures(fid_files, out_dir, floor=None, reference_label=None, curves=None, samples=None) -> None:
    """Every figure into out_dir, atomically as a whole folder."""
    plt = _plt()
    series = _series(fid_files)
    if not series:
        raise UserError("no FID results to plot")
    with atomic_dir(out_dir) as tmp:
        fl = read_json(floor) if floor else None
        fig, ax = plt.subplots(figsize=(7, 4.5))
        fid_vs_nfe(ax, series, fl, reference_label)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.set_title("FID against NFE")
        _save(fig, tmp, "fid_vs_nfe")
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if fid_vs_finetune(ax, series, reference_label):
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
            ax.set_title("FID against fine-tuning time")
            _save(fig, tmp, "fid_vs_finetune")
        else:
            plt.close(fig)
        if curves:
            from .curves import read_curve
            plot_curves([(f, v, read_curve(p)) for f, v, p in curves], tmp)
        if samples:
            plot_samples(samples, tmp)
