"""Result records, from result files only: one record per row from its metrics JSON
(each carries its row's label, family, tables and columns), the models' metadata sidecars
(wall times, never from logs), profile and floor files. Every row is evaluated on the
same seed sets; a record holds the mean of each metric over them (and `<metric>_std`,
`<metric>_sets`), and differences between rows are read paired, set by set
(`diffdistill.stats`), on FID at infinite n (no bias that depends on the sample count)."""
from __future__ import annotations

import math

import numpy as np

from . import stats
from .atomic import meta_path
from .errors import UserError
from .files import read_json_object

METRICS = ("fid", "fid_inf", "kid", "precision", "recall", "density", "coverage", "rmse", "feature_distance",
           "fd_teacher")
Q = "fid_inf"  # the quality every comparison reads: FID at infinite n
MEASURED_AGAINST = ("features", "featnet", "inception_weights", "ref")  # what makes two FIDs comparable


def load_records(files, every_evaluation: bool = False) -> list[dict]:
    """Metrics records, one per row (first-seen order; `every_evaluation`: one per row and
    number of seed sets, for the claims plan's extra sets, `at_sets`); each holds the mean of every metric
    over its seed sets, `<metric>_std` (NaN for one set) and `<metric>_sets`. Refused,
    naming the file: a non-finite FID (a NaN is not a missing value), and files measured
    against different feature networks or reference statistics (their metadata sidecars'
    arguments), whose FIDs cannot be compared."""
    by: dict[str, dict] = {}
    against: tuple[str, dict] | None = None
    for f in files:
        r = read_json_object(f, ("label", "nfe", ("name", "row")), "metrics file")
        for key in ("fid", "fid_inf", "fid_sets", "fid_inf_sets"):
            vals = r.get(key, [])
            bad = next((v for v in (vals if isinstance(vals, list) else [vals])
                        if not isinstance(v, (int, float)) or not math.isfinite(v)), None)
            if bad is not None or (key in r and not isinstance(vals, (list, int, float))):
                raise UserError(f"{f}: '{key}' holds {bad!r}, not a finite number; rerun its metrics job")
        for m in METRICS:
            if m in r:
                r.setdefault(f"{m}_std", float("nan"))
        if meta_path(f).is_file():
            args = read_json_object(meta_path(f), (), "metadata sidecar").get("args") or {}
            mine = {k: args.get(k) for k in MEASURED_AGAINST if k in args}
            if against is None:
                against = (str(f), mine)
            elif mine and against[1] and mine != against[1]:
                diff = next(k for k in MEASURED_AGAINST if mine.get(k) != against[1].get(k))
                raise UserError(f"{f} was measured with {diff} {mine.get(diff)!r}, {against[0]} with "
                                f"{against[1].get(diff)!r}: their FIDs cannot be compared")
        r["metrics_file"] = str(f)
        by.setdefault((r.get("name") or r["row"], r.get("seed_sets") if every_evaluation else None), r)
    return list(by.values())


def at_sets(records: list[dict], sets: int | None = None) -> list[dict]:
    """One record per row: its evaluation on `sets` seed sets where it has one (the claims
    plan's), else its first (the main evaluation)."""
    by: dict[str, dict] = {}
    for r in records:
        name = r.get("name") or r.get("row")
        if name not in by or (sets is not None and r.get("seed_sets") == sets):
            by[name] = r
    return list(by.values())


def in_table(records, table: str | tuple) -> list[dict]:
    tables = (table,) if isinstance(table, str) else table
    return [r for r in records if set(tables) & set(r.get("tables", ()))]


def cell(r: dict, table: str) -> tuple[str, str]:
    """(row label, column) of a record in `table` (a row may say so per table)."""
    spec = r.get("meta", {}).get(table, {})
    return spec.get("row", r["label"]), spec.get("col", r.get("column") or f"NFE {r['nfe']}")


def model_meta(r: dict) -> dict | None:
    m = r.get("model")
    return read_json_object(meta_path(m), (), "metadata sidecar") if m and meta_path(m).exists() else None


def fine_tune_seconds(meta: dict | None) -> float | None:
    """Training time to reach a model: PD and SFD's second stage count their earlier stages."""
    if meta is None or "wall_time" not in meta:
        return None
    return meta.get("cumulative_wall_time", meta["wall_time"])


def values(r: dict, key: str = Q) -> list:
    """A row's per-seed-set values of `key` (one value where it has no sets)."""
    return list(r.get(f"{key}_sets") or [r[key]])


def combination(rows_weights: list[tuple[dict, float]]) -> dict:
    """A row-like dict of a weighted sum of rows' per-set FIDs at infinite n (and of
    their fit draws): a combination tested against 0, or the mean of one setting's
    models over their training seeds (weights 1 / T)."""
    k = min(len(values(r)) for r, _ in rows_weights)
    sets = [sum(w * values(r)[i] for r, w in rows_weights) for i in range(k)]
    draws = [r.get("fid_bias_draws") or [] for r, _ in rows_weights]
    b = min(len(x) for x in draws)
    out = {Q: float(np.mean(sets)), f"{Q}_sets": sets, "names": [r.get("name") for r, _ in rows_weights]}
    if b > 1:
        out["fid_bias_draws"] = [sum(w * x[i] for (_, w), x in zip(rows_weights, draws)) for i in range(b)]
    return out


def reference(records: list[dict]) -> dict | None:
    return next((r for r in records if r.get("kind") == "reference"), None)


def reference_halfwidth(r: dict, ref: dict | None) -> float:
    """The 95 % half-width of a row's paired difference to the reference (NaN for the
    reference itself, or without one): the ± of the main table and its figure."""
    if ref is None or r is ref or r.get("name") == ref.get("name"):
        return float("nan")
    return stats.paired_rows(r, ref)["detectable"]


def load_profiles(paths) -> dict:
    """Profile rows (MACs per image, images/s) of every given profile file, by row name."""
    return {r["name"]: r for p in paths for r in read_profile(p)}


def read_profile(path) -> list[dict]:
    """The rows of a profile file, each an object with a name; else one line naming it."""
    rows = read_json_object(path, ("rows",), "profile file")["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "name" in r for r in rows):
        raise UserError(f"{path}: 'rows' must be a list of objects, each with a 'name'")
    return rows


def read_floor(path) -> dict:
    return read_json_object(path, ("fid", "fid_std", "fid_splits", "num_samples"), "floor file")
