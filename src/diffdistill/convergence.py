"""When a student has converged: the plateau rule every training run with a validation
curve follows (`lr_schedule: plateau`).

Every `curve_every` iterations the runner measures the student on the curve seeds
(`naming.curve_seeds`: disjoint from the evaluation seeds and from the trajectory
pool). The monitored value (lower is better; the agreement with what the student is
trained to reproduce) is fitted over the last `window` points since the last change of
the learning rate: the least-squares slope, as a gain per point relative to the
points' mean. A gain below `tol` is a plateau. The first `decays` plateaus divide the
learning rate by 1 / `decay` and start a new window; the next one ends training, which
is then complete (*converged*). The method's `iters` caps it either way. The weights
the run exports are those of its best monitored curve point (the runner keeps a copy):
on the curve seeds, never the evaluation seeds, so what a student learns after its
curve has turned up (fitting the trajectory pool rather than the teacher) is not kept.

So a flat curve always means a converged student: the learning rate has already been
lowered once at the plateau before it, and training went on until the lowered rate
gained nothing more either. With `tol` about the curve's own noise per point (the
spread of its points around their trend), a curve that falls by twice that noise per
point is never taken for a plateau (tests/test_convergence.py simulates both).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from .errors import UserError

CONTINUE, DECAY, STOP = "continue", "decay", "stop"


@dataclass(frozen=True)
class Plateau:
    window: int = 6        # curve points the slope is fitted over (since the last lr change)
    tol: float = 0.0025    # relative gain per point below which the curve is flat (about its noise)
    decay: float = 0.1     # learning-rate factor at a plateau
    decays: int = 1        # plateaus that lower the learning rate before one ends training


def relative_gain(values) -> float:
    """The least-squares slope of `values` (one per curve point, lower is better) as a
    gain per point relative to their mean: positive while the curve falls."""
    v = [float(x) for x in values]
    if not all(math.isfinite(x) for x in v):
        raise UserError(f"the validation curve holds a value that is not finite ({', '.join(map(str, v))}): "
                        "training diverged; lower the learning rate")
    slope = statistics.linear_regression(range(len(v)), v).slope
    level = abs(statistics.fmean(v))
    return float(-slope / level) if level > 0 else 0.0


def is_plateau(values, rule: Plateau) -> bool:
    """Whether the last `rule.window` values gain less than `rule.tol` per point."""
    return len(values) >= rule.window and relative_gain(values[-rule.window:]) < rule.tol


def decide(values, decays_done: int, rule: Plateau) -> str:
    """What the runner does after a new curve point: `values` are the monitored points
    since the last learning-rate change. CONTINUE, DECAY (lower the rate and start a new
    window) or STOP (converged)."""
    if not is_plateau(values, rule):
        return CONTINUE
    return DECAY if decays_done < rule.decays else STOP


def lr_factor(decays_done: int, rule: Plateau) -> float:
    return rule.decay ** decays_done
