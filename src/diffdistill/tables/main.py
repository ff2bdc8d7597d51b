"""The main tables: FID at infinite n against NFE, every row against the reference
sampler, precision/recall, quality against compute, and every row's metrics for DVC. A
cell shows the mean over the seed sets (CSV: also `<column> std`); differences between
rows are read paired, set by set (`diffdistill.stats`), on FID at infinite n."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .. import stats
from ..atomic import atomic_dir
from ..errors import UserError
from ..records import (Q, cell, fine_tune_seconds, in_table, load_profiles, load_records, model_meta, read_floor,
                       reference, reference_halfwidth, values)
from . import Parts
from .cost import cost_table, write_cost_table, write_job_table
from .format import fid_long, finite, write_table

FT = "fine-tune s"


def fid_table(records: list[dict], table: str = "main", metric: str = "fid") -> pd.DataFrame:
    """Rows = row labels (first-seen order), columns = NFE (and `<NFE> std` where a row has
    several seed sets), plus fine-tuning seconds for the FID table. For FID at infinite n
    with a reference row, the `std` column holds the 95 % half-width of the row's paired
    difference to the reference (`reference_halfwidth`), not the spread over the sets,
    most of which every row shares."""
    rows: dict[str, dict] = {}
    ref = reference(records) if metric == Q else None
    for r in in_table(records, table):
        if metric not in r:
            continue
        label, col = cell(r, table)
        row = rows.setdefault(label, {"method": label})
        row[col] = r[metric]
        spread = reference_halfwidth(r, ref) if ref is not None else r[f"{metric}_std"]
        if spread == spread:
            row[f"{col} std"] = spread
        if r.get("kind") == "distilled" and metric == "fid":
            wall = fine_tune_seconds(model_meta(r))
            if wall is not None:
                row.setdefault(FT, {})[r["nfe"]] = wall
    if not rows:
        raise UserError(f"no {metric.upper()} results in table '{table}'")
    df = pd.DataFrame(list(rows.values()))
    nfe_cols = sorted([c for c in df.columns if c.startswith("NFE ") and not c.endswith(" std")],
                      key=lambda c: int(c.split()[1]))
    cols = ["method"] + [x for c in nfe_cols for x in (c, f"{c} std") if x in df.columns]
    if FT in df:
        df[FT] = df[FT].map(_fine_tune_cell)
        cols.append(FT)
    return df[cols]


def _fine_tune_cell(per_nfe) -> str:
    """Fine-tuning seconds of a row: one number where every NFE shares one model (or there
    is one NFE), else 'NFE 2: 65 s, 3: 98 s, ...' (PD: up to that round)."""
    if not isinstance(per_nfe, dict) or not per_nfe:
        return ""
    values = [per_nfe[k] for k in sorted(per_nfe)]
    if max(values) - min(values) < 0.5:
        return f"{values[0]:.0f} s"
    return "NFE " + ", ".join(f"{k}: {per_nfe[k]:.0f} s" for k in sorted(per_nfe))


def prdc_table(records: list[dict], table: str = "main") -> pd.DataFrame:
    """Precision, recall, density and coverage of every row (long form, mean and std)."""
    rows = []
    for r in in_table(records, table):
        if "precision" in r:
            label, _ = cell(r, table)
            rows.append({"method": label, "NFE": r["nfe"],
                         **{k: r[x] for m in ("precision", "recall", "density", "coverage")
                            for k, x in ((m, m), (f"{m} std", f"{m}_std"))}})
    return pd.DataFrame(rows)


def metric_path(name: str) -> tuple[str, str, str]:
    """(method, variant, "nfe<n>") of a row name: students/<method>/<variant>/nfe<n>, or
    <sampler>[/<variant>]/nfe<n> (variant "default" where the name has none)."""
    parts = name.split("/")
    if parts[0] == "students" and len(parts) == 4:
        return parts[1], parts[2], parts[3]
    return parts[0], "/".join(parts[1:-1]) or "default", parts[-1]


def row_metrics(r: dict, ref: dict | None, target: dict | None) -> dict:
    """One row's metrics for DVC: FID at n and at infinite n, the std of FID at infinite
    n over the seed sets, and the paired difference to the reference and to the row's
    target (± the 95 % half-width), each where it exists (JSON null where not finite)."""
    out = {"fid_inf": finite(r.get(Q)), "fid_inf_std": finite(r.get(f"{Q}_std")), "fid_n": finite(r.get("fid"))}
    for key, other in (("reference", ref), ("target", target)):
        if other is not None and other.get("name") != r.get("name"):
            d = stats.paired_rows(r, other)
            out[f"minus_{key}"], out[f"minus_{key}_ci95"] = finite(d["diff"]), finite(d["detectable"])
    return out


def nested_metrics(records: list[dict]) -> dict:
    """Every row's metrics nested by method, variant and NFE (`metric_path`, `row_metrics`):
    short keys for `dvc metrics show` and `dvc exp show`. A target row (what a student is
    trained to reproduce) sits under its student as `target`, not under its cache name."""
    ref = reference(records)
    by_name = {r.get("name"): r for r in records}
    targets = {r.get("meta", {}).get("target") for r in records} - {None}
    out: dict = {}
    for r in records:
        name = r.get("name") or r["row"]
        target = by_name.get(r.get("meta", {}).get("target"))
        if name in targets:
            continue  # reported with its student
        method, variant, nfe = metric_path(name)
        entry = row_metrics(r, ref, target)
        if target is not None:
            entry["target"] = row_metrics(target, ref, None)
        out.setdefault(method, {}).setdefault(variant, {})[nfe] = entry
    return out


def vs_reference_table(records: list[dict], table: str = "main") -> pd.DataFrame:
    """Every row of `table` against the reference sampler, paired over the seed sets: FID
    at n and at infinite n, the paired difference of FID at infinite n (± its standard
    error) with its p value, the ratio of the bias-free FIDs, and the agreement with the
    teacher on the same seeds (pixel RMSE, feature distance, Frechet distance to the
    teacher's samples minus the teacher's own)."""
    recs, ref = in_table(records, table), reference(records)
    if ref is None:
        return pd.DataFrame()
    by_name = {x.get("name"): x for x in records}
    rows = []
    for r in recs:
        if r is ref:
            continue
        d = stats.paired_rows(r, ref)
        target = by_name.get(r.get("meta", {}).get("target"))
        dt = stats.paired_rows(r, target) if target else None
        ratio, ratio_se = stats.ratio(values(r), values(ref))
        fd = stats.paired(values(r, "fd_teacher"), [0.0] * len(values(r, "fd_teacher"))) if "fd_teacher" in r \
            else None
        label, _ = cell(r, table)
        rows.append({"method": label, "NFE": r["nfe"], "FID (n)": r["fid"], "FID inf": r[Q],
                     "- reference": d["diff"], "- reference std": d["se"], "p": d["p"],
                     "- target": dt["diff"] if dt else float("nan"), "- target std": dt["se"] if dt else float("nan"),
                     "p (target)": dt["p"] if dt else float("nan"),
                     "/ reference": ratio, "/ reference std": ratio_se,
                     "RMSE to teacher": r.get("rmse", float("nan")),
                     "feature distance": r.get("feature_distance", float("nan")),
                     "FD to teacher - own": fd["diff"] if fd else float("nan"),
                     "FD to teacher - own std": fd["se"] if fd else float("nan"), "_detectable": d["detectable"],
                     "_power80": stats.power80(d["se"], d["df"])})
    return pd.DataFrame(rows)


def resolution_note(records: list[dict], df: pd.DataFrame) -> str:
    """How small a paired difference the run resolves (`df`: the vs_reference table), and
    what KID can and cannot tell."""
    ref = reference(records)
    lines = []
    if not df.empty and ref is not None:
        kinds = {r["label"]: r.get("kind") for r in records}
        det = df[[kinds.get(m) == "distilled" for m in df["method"]]]["_detectable"].dropna()
        det = det if len(det) else df["_detectable"].dropna()
        pw = df.loc[det.index, "_power80"].dropna()
        k = ref.get("seed_sets", 1)
        if len(det):
            lines.append(f"Differences are paired over the {k} seed sets of {ref['num_samples']} samples that every "
                         f"row shares (± of a difference: its standard error; p: Student's t, {k - 1} degrees of "
                         f"freedom). The smallest difference from the reference that this run calls significant "
                         f"(95 % half-width, median over the distilled rows): {det.median():.2f} FID; the difference "
                         f"it detects with 80 % power: {pw.median():.2f} FID.")
        if "rmse_unrelated" in df.columns or any("rmse_unrelated" in r for r in records):
            un = [r["rmse_unrelated"] for r in records if "rmse_unrelated" in r]
            lines.append(f"Agreement with the teacher on the same seeds: pixel RMSE in [-1, 1] units (unrelated pairs: "
                         f"{np.mean(un):.2f}); feature distance: mean Euclidean distance of the features.")
        nf = ref.get("noise_floor", {})
        if "kid" in nf:
            spread = f" ± {nf['kid_std']:.3g}" if nf["kid_std"] == nf["kid_std"] else ""
            lines.append(f"KID is not shown: on these features the reference against itself (its seed sets pairwise) "
                         f"gives KID {nf['kid']:.3g}{spread}, a null spread as wide as the differences between rows "
                         "(its values stay in the metrics files).")
    if ref is not None:
        side = ("the reference side is extrapolated too (subsets of a third to all of the reference set)."
                if ref.get("reference_extrapolated") else
                "the reference statistics stay at their own n (published mean and covariance only).")
        lines.append("FID at infinite n (Chong & Forsyth 2020): FID on random subsets of the row's pooled seed sets "
                     "(20..100 % of the pool, at least 4.5x the feature dimension), a linear fit in 1/n drawn "
                     f"{len(ref.get('fid_bias_draws') or [0])} times; each set's value is its FID at n minus the "
                     "mean fitted bias at n, so the sets keep their own noise and stay paired, and the fits' own "
                     "spread is in every paired standard error; " + side)
    return "\n\n".join(lines)


def efficiency_table(records: list[dict], profile: dict, table: str | tuple = "main") -> pd.DataFrame:
    """Quality against compute: every row of `table` that samples a model."""
    rows = []
    for r in in_table(records, table):
        p = profile.get(r.get("name"))
        if p is None:
            continue
        rows.append({"method": r["label"], "NFE": r["nfe"], "FID inf": r.get(Q, r["fid"]),
                     "FID inf std": r.get(f"{Q}_std", float("nan")),
                     "MMACs / image": p["macs_per_image"] / 1e6, "images/s": p["images_per_second"]})
    return pd.DataFrame(rows)


def write_tables(fid_files: list[str], out_dir, floor: str | None = None, profiles=(), parts: Parts = Parts(),
                 tables: tuple = ("main",)) -> None:
    """The main table (fid_vs_nfe: FID at infinite n), every row against the reference
    (vs_reference: paired differences, ratios of bias-free FIDs, agreement with the
    teacher), precision/recall (prdc), the cost table, with the profile the efficiency
    table, and the methods' own tables (`parts`): csv, md and tex each, into out_dir,
    atomically as a whole folder. Lower FID is better. `floor` (real against real) goes
    into fid_metrics.json only. `tables`: the row groups shown (the main job's "main";
    with "extended", the students built with the claims beside them)."""
    records = load_records(fid_files)
    fid = fid_table(records, tables, Q)
    vs = vs_reference_table(records, tables)
    prof = load_profiles(profiles)
    eff = efficiency_table(records, prof, tables) if prof else pd.DataFrame()
    cost = cost_table(records)
    note = resolution_note(records, vs)
    n = max(r.get("seed_sets", 1) for r in in_table(records, tables))
    sets = (f"mean over {n} seed sets ± the 95 % half-width of each row's paired difference to the reference"
            if n > 1 and reference(records) is not None else
            f"mean ± std over {n} seed sets" if n > 1 else "one seed set")
    with atomic_dir(out_dir, "table") as tmp:
        write_table(tmp, "fid_vs_nfe", fid, f"FID at infinite n against NFE (lower is better; {sets})", note)
        if not vs.empty:
            write_table(tmp, "vs_reference", vs.drop(columns=["_detectable", "_power80"]), "Every row against the "
                        "reference "
                        "sampler, paired over the seed sets", note, intro=(
                            "FID (n): at the evaluated sample count; FID inf: extrapolated to infinite n; "
                            "'- reference' and '/ reference': the paired difference and the ratio of FID at infinite "
                            "n (± standard error); '- target': the paired difference to what the row is trained to "
                            "reproduce (SFD: the teacher's trajectories on the same seeds; PD: its own teacher, the "
                            "round before), with its p; RMSE and feature distance: against the reference sampler's output "
                            "for the same seed; 'FD to teacher - own': Frechet distance to the teacher's samples of "
                            "another seed set minus the teacher's own at the same n."))
        if any("precision" in r for r in records):
            write_table(tmp, "prdc", prdc_table(records, tables), "Precision, recall, density and coverage (k nearest "
                        f"neighbours; higher is better; {sets})")
        # for DVC (dvc.yaml): the plot of FID against NFE, and every row's FID as metrics
        fid_long(fid).to_csv(tmp / "fid_vs_nfe_long.csv", index=False, float_format="%.4f")
        metrics = nested_metrics(records)
        if floor:
            metrics["floor"] = read_floor(floor)["fid"]
        (tmp / "fid_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        for method_tables in parts.tables:
            method_tables(records, prof, tmp)
        if not eff.empty:
            write_table(tmp, "efficiency", eff, "Quality against compute", intro=(
                "Every row of the main table that samples a network: FID at infinite n (lower is better; mean ± std "
                "over the seed sets), network MACs per image (FlopCounterMode FLOPs / 2, summed over the "
                "evaluations the sampler makes) and images per second, measured by one job running alone."))
        if not cost.empty:
            write_cost_table(tmp, cost, parts.compare)
        write_job_table(tmp, [*fid_files, *([floor] if floor else []), *profiles], tables)
