"""What every figure shares (matplotlib without a display, PNG and PDF saved without
dates, plain numbers on log axes, the spare colours and markers) and the learning-curve
figures: FID during training, one panel per ablation factor (`plot_curves`) or one line
per training seed (`plot_seed_curves`)."""
from __future__ import annotations

import math
from pathlib import Path

EXTRA_COLOURS = ["tab:red", "darkblue", "teal", "indigo", "crimson", "darkgreen", "chocolate"]
MARKERS = "osD^v<>ph*"


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, out: Path, name: str) -> None:
    """<name>.png and <name>.pdf in `out`, with no date in them; the figure is closed."""
    for ext in ("png", "pdf"):
        fig.savefig(out / f"{name}.{ext}", dpi=150, bbox_inches="tight",
                    metadata={"CreationDate": None} if ext == "pdf" else {"Software": None})
    pyplot().close(fig)


def plain_log_axis(axis) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def plot_curves(curves: list[tuple[str, str, dict]], out: Path) -> None:
    """curves: (factor, value, curve dict); the default's curve appears in every panel."""
    plt = pyplot()
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
        for i, (f, v, c) in enumerate(x for x in curves if x[0] == factor and factor != "default"):
            pts = c["points"]
            ax.plot([p["iteration"] for p in pts], [p["fid"] for p in pts], marker=MARKERS[i % len(MARKERS)],
                    ms=3, color=EXTRA_COLOURS[i % len(EXTRA_COLOURS)], label=f"{v}")
        ax.set_title(factor, fontsize=9)
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
        ax.set_xlabel("iteration")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(factors):]:
        ax.axis("off")
    axes[0][0].set_ylabel("FID (curve seeds, lower is better)")
    fig.suptitle("FID during training (SFD ablations; curve seeds)", fontsize=10)
    save_figure(fig, out, "fid_curves")


def plot_seed_curves(groups: dict[str, list[dict]], out: Path, name: str, title: str) -> None:
    """groups: {label: curve dicts, one per training seed}: each seed a thin line, the
    groups' mean over seeds a thick one, one colour per group."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    for i, (label, curves) in enumerate(groups.items()):
        colour = EXTRA_COLOURS[i % len(EXTRA_COLOURS)]
        for c in curves:
            pts = c["points"]
            ax.plot([p["iteration"] for p in pts], [p["fid"] for p in pts], color=colour, lw=0.7, alpha=0.5)
        iters = sorted(set.intersection(*(set(p["iteration"] for p in c["points"]) for c in curves)))
        mean = [sum(p["fid"] for c in curves for p in c["points"] if p["iteration"] == it) / len(curves)
                for it in iters]
        ax.plot(iters, mean, color=colour, lw=2, marker=MARKERS[i % len(MARKERS)], ms=4,
                label=f"{label} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("iteration")
    ax.set_ylabel("FID (curve seeds, lower is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    save_figure(fig, out, name)
