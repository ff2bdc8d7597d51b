"""Validation curves: the student measured on the curve seeds during training (SFD's
Figure 4, and what the plateau rule of `diffdistill.convergence` reads), and the curve
file it leaves.

The curve seeds (`curve_seeds`: `convergence.seed_start` on, `convergence.samples` of
them) are disjoint from the evaluation seeds and from the trajectory pool
(`naming.check_seed_spaces`), so choosing when to stop never looks at the seeds the
tables are computed on.

Curve file (JSON, one per student):
    {"format": "diffdistill-curve/2", "row": ..., "label": ..., "nfe": int,
     "seeds": "1000000-1000249", "num_samples": int, "monitor": "rmse", "converged": bool,
     "points": [{"iteration": int, "fid": float, "rmse": float, "wall_time": float,
                 "lr": float}, ...]}
`iteration` 0 is the student before any update; `wall_time` is training seconds so far,
evaluation excluded; `rmse` is the agreement with what the student is trained to
reproduce (pixel RMSE in [-1, 1] units, same seeds), `fid` the FID of the curve seeds'
samples at n = num_samples (biased by about b / n, the same for every point).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import UserError
from .files import read_json_object, write_json

FORMAT = "diffdistill-curve/2"
READS = (FORMAT, "diffdistill-fid-curve/1")  # version 1: FID points only


def curve_seeds(seed_start: int, samples: int) -> list[int]:
    return list(range(seed_start, seed_start + samples))


def seeds_text(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}"


def rmse(images, target) -> float:
    """Mean per-image pixel RMSE between float images in [-1, 1] of the same seeds."""
    d = (images.float() - target.float()).flatten(1)
    return float(d.pow(2).mean(1).sqrt().mean())


def curve_evaluator(probes: list, seeds: list[int], img_shape, extractor=None, ref_path=None,
                    batch_size: int = 500, device="cpu") -> Callable:
    """model -> {"rmse", "fid"} on `seeds`, averaged over `probes`: each a (sampler, target)
    pair, the sampler a dict of `generate_images` settings (timesteps, solver, afs,
    model_kwargs) and the target the float images [N, C, H, W] in [-1, 1] it is trained to
    reproduce for these seeds (None: no agreement). FID needs `extractor` and `ref_path`."""
    from .sampling import generate_images, to_uint8

    ref = None
    if extractor is not None:
        from .metrics import load_stats
        ref = load_stats(ref_path)

    def evaluate(model) -> dict:
        out: dict[str, list] = {}
        for sampler, target in probes:
            imgs = generate_images(model, seeds, sampler["timesteps"], sampler.get("solver", "euler"),
                                   sampler.get("afs", False), batch_size=batch_size, img_shape=img_shape,
                                   progress=False, model_kwargs=sampler.get("model_kwargs"), device=device)
            if target is not None:
                out.setdefault("rmse", []).append(rmse(imgs, target))
            if ref is not None:
                from .metrics import fid_images_to_stats
                out.setdefault("fid", []).append(fid_images_to_stats(to_uint8(imgs), extractor, *ref, batch_size,
                                                                     device=device))
        return {k: float(np.mean(v)) for k, v in out.items()}
    return evaluate


def write_curve(path, curve: list, *, row: str, label: str, nfe: int, seeds: str, num_samples: int,
                monitor: str = "fid", converged: bool = False) -> None:
    points = [{k: (int(v) if k == "iteration" else float(v)) for k, v in p.items()} for p in curve]
    write_json(path, {"format": FORMAT, "row": row, "label": label, "nfe": int(nfe), "seeds": seeds,
                      "num_samples": int(num_samples), "monitor": monitor, "converged": bool(converged),
                      "points": points})


def read_curve(path) -> dict:
    """Load and check a curve file; a malformed one is a one-line error naming it."""
    d = read_json_object(path, (), "FID curve")
    if d.get("format") not in READS:
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
    ("fid" in a curve file). The tables' 'last gain'."""
    if len(points) < 2:
        return float("nan")
    before, last = points[-2][key], points[-1][key]
    return (before - last) / abs(before) if before else float("nan")
