"""FID during training (SFD's Figure 4): an evaluator for the shared training loop, and
the curve file it leaves.

Curve file (JSON, one per student):
    {"format": "diffdistill-fid-curve/1", "row": ..., "label": ..., "nfe": int,
     "seeds": "0-499", "num_samples": int,
     "points": [{"iteration": int, "fid": float, "wall_time": float}, ...]}
`iteration` 0 is the student before any update (the teacher stepping with Euler on the
student's timestamps); `wall_time` is training seconds so far, evaluation excluded.
"""
from __future__ import annotations

from typing import Callable

from .io import UserError, read_json_object, write_json

FORMAT = "diffdistill-fid-curve/1"


def fid_evaluator(extractor, ref_path, seeds, timesteps, afs: bool, img_shape, batch_size: int = 500,
                  device="cpu", solver: str = "euler", model_kwargs: dict | None = None) -> Callable:
    """model -> FID of samples for fixed seeds (the model's sampler: solver, AFS, grid)."""
    from .metrics import fid_images_to_stats, load_stats
    from .sampling import generate_images, to_uint8

    ref_mu, ref_sigma = load_stats(ref_path)

    def evaluate(model) -> float:
        imgs = to_uint8(generate_images(model, seeds, timesteps, solver, afs, batch_size=batch_size,
                                        img_shape=img_shape, progress=False, model_kwargs=model_kwargs,
                                        device=device))
        return fid_images_to_stats(imgs, extractor, ref_mu, ref_sigma, batch_size, device=device)
    return evaluate


def write_curve(path, curve: list, *, row: str, label: str, nfe: int, seeds: str, num_samples: int) -> None:
    points = [{"iteration": int(p["iteration"]), "fid": float(p["value"]), "wall_time": float(p["wall_time"])}
              for p in curve]
    write_json(path, {"format": FORMAT, "row": row, "label": label, "nfe": int(nfe), "seeds": seeds,
                      "num_samples": int(num_samples), "points": points})


def read_curve(path) -> dict:
    """Load and check a curve file; a malformed one is a one-line error naming it."""
    d = read_json_object(path, (), "FID curve")
    if d.get("format") != FORMAT:
        raise UserError(f"{path} is not a FID curve (format {d.get('format')!r}, expected {FORMAT!r})")
    for key in ("row", "label", "nfe", "points"):
        if key not in d:
            raise UserError(f"FID curve {path} lacks '{key}'")
    its = [p["iteration"] for p in d["points"]]
    if its != sorted(set(its)):
        raise UserError(f"FID curve {path}: iterations are not strictly increasing")
    return d


def last_gain(points: list, key: str = "fid") -> float:
    """The last point's improvement on the point before (FID: lower is better), as a
    fraction of that point; NaN with fewer than two points. `key`: the value's field
    ("fid" in a curve file). The runner's stop_flat rule and the tables' 'last gain'."""
    if len(points) < 2:
        return float("nan")
    before, last = points[-2][key], points[-1][key]
    return (before - last) / abs(before) if before else float("nan")
