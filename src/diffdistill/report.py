"""Tables from result files only: metrics from the FID JSONs (each carries its row's
label, family, tables and columns), wall times and costs from the models' metadata
sidecars (never from logs). Every row is evaluated on the same seed sets; a cell shows
the mean over them (CSV: also `<column> std`), and differences between rows are read
paired, set by set (`diffdistill.stats`), on FID at infinite n (no bias that depends on
the sample count)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .atomic import atomic_dir, meta_path
from .errors import UserError
from .files import read_json_object

FT = "fine-tune s"
METRICS = ("fid", "fid_inf", "kid", "precision", "recall", "density", "coverage", "rmse", "feature_distance",
           "fd_teacher")
Q = "fid_inf"  # the quality every comparison reads: FID at infinite n


@dataclass(frozen=True)
class Parts:
    """What the methods add to the tables and figures; the command line gathers it from
    their registry (`diffdistill.methods.report_parts`), so this module names no method."""
    labels: dict = field(default_factory=dict)    # family -> its name in titles
    colours: dict = field(default_factory=dict)   # family -> its colour in the figures
    compare: tuple = ()                           # (fast, slow): families compared at equal NFE (cost table)
    tables: tuple = ()                            # callables (records, profile, out_dir): a method's own tables
    ablation_tables: dict = field(default_factory=dict)  # table -> callable (records, out_dir) of the ablation target


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


def _cell(r: dict, table: str) -> tuple[str, str]:
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
        label, col = _cell(r, table)
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
            label, _ = _cell(r, table)
            rows.append({"method": label, "NFE": r["nfe"],
                         **{k: r[x] for m in ("precision", "recall", "density", "coverage")
                            for k, x in ((m, m), (f"{m} std", f"{m}_std"))}})
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    std_cols = {c for c in df.columns if c.endswith(" std") and c[:-4] in df.columns}

    def cell(v):
        if isinstance(v, float):
            return "—" if math.isnan(v) else floatfmt.format(v)
        return str(v) if v is not None and v == v else "—"

    def row_cells(row):
        out = []
        for c in df.columns:
            if c in std_cols:
                continue
            v = row[c]
            s = row.get(f"{c} std")
            text = cell(v)
            if isinstance(s, float) and not math.isnan(s) and text != "—":
                text += f" ± {floatfmt.format(s)}"
            out.append(text)
        return out

    cols = [c for c in df.columns if c not in std_cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(row_cells(row)) + " |" for _, row in df.iterrows()]
    return "\n".join(lines) + "\n"


def fid_long(df: pd.DataFrame) -> pd.DataFrame:
    """The FID table in long form: one (method, nfe, fid) row per filled cell."""
    nfe_cols = [c for c in df.columns if c.startswith("NFE ") and not c.endswith(" std")]
    rows = [{"method": r["method"], "nfe": int(c.split()[1]), "fid": r[c]}
            for _, r in df.iterrows() for c in nfe_cols if r[c] == r[c]]
    return pd.DataFrame(rows, columns=["method", "nfe", "fid"])


def to_latex(df: pd.DataFrame, caption: str, fmt: str = "{:.2f}") -> str:
    """A booktabs table (pandas' Styler): mean ± std in one cell, like the markdown."""
    std_cols = [c for c in df.columns if c.endswith(" std") and c[:-4] in df.columns]
    shown = df.drop(columns=std_cols).astype(object)
    for c in std_cols:
        base = c[:-4]
        shown[base] = [(f"{fmt.format(m)} $\\pm$ {fmt.format(sd)}" if sd == sd else fmt.format(m))
                       if isinstance(m, float) and m == m else ("--" if isinstance(m, float) else m)
                       for m, sd in zip(df[base], df[c])]
    shown = shown.map(lambda v: ("--" if v != v else fmt.format(v)) if isinstance(v, float) else v)
    return shown.style.hide(axis="index").to_latex(hrules=True, caption=caption.replace("±", "$\\pm$")) + "\n"


def write_table(folder: Path, name: str, df: pd.DataFrame, title: str, note: str = "", shown=None,
                intro: str = "", fmt: str = "{:.2f}") -> None:
    """<name>.csv (numbers), <name>.md (mean ± std cells) and <name>.tex (booktabs)."""
    df.to_csv(folder / f"{name}.csv", index=False, float_format="%.8g")
    shown = df if shown is None else shown
    (folder / f"{name}.md").write_text(f"# {title}\n\n" + (f"{intro}\n\n" if intro else "")
                                       + to_markdown(shown, fmt) + (f"\n{note}\n" if note else ""))
    (folder / f"{name}.tex").write_text(to_latex(shown, title, fmt))


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


def _finite(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


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
    out = {"fid_inf": _finite(r.get(Q)), "fid_inf_std": _finite(r.get(f"{Q}_std")), "fid_n": _finite(r.get("fid"))}
    for key, other in (("reference", ref), ("target", target)):
        if other is not None and other.get("name") != r.get("name"):
            d = stats.paired_rows(r, other)
            out[f"minus_{key}"], out[f"minus_{key}_ci95"] = _finite(d["diff"]), _finite(d["detectable"])
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
        label, _ = _cell(r, table)
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


def write_job_table(out: Path, files, tables: tuple = ("main",)) -> None:
    """jobs.{csv,md,tex}: where the time of the jobs that made these tables went
    (`diffdistill.jobs`), with their span: the target's wall clock by the jobs' own clocks;
    and summary.md: the dated page of the main tables (date, machine, commit, wall clock)."""
    from .jobs import job_table

    df, span = job_table(files)
    if df.empty:
        return
    title = "Main job" if tables == ("main",) else f"Tables of {' + '.join(tables)}"
    write_job_page(out, df, span, title, SUMMARY)


def write_job_page(out: Path, df: pd.DataFrame, span: dict, title: str, sections,
                   heading: str = "Where the time went: the jobs that made these tables") -> None:
    """jobs.{csv,md,tex} from `jobs.job_table`'s (df, span), and summary.md: the dated
    page (`jobs.summary_markdown`) of `sections`, (file stem in `out`, heading) pairs."""
    from .jobs import summary_markdown

    write_table(out, "jobs", df, heading, intro=(
        f"{span['jobs']} jobs, {span['process_seconds']:.0f} process seconds in all (start-up included); from the "
        f"first job's start to the last one's end: **{span['seconds']:.0f} s ({span['seconds'] / 60:.1f} min)**, "
        "by the jobs' own clocks (the metadata sidecars' started_at and finished_at; Snakemake's planning before the "
        "first job is not counted). Jobs run side by side on the available cores."), fmt="{:.1f}")
    parts = [(head, (out / f"{name}.md").read_text()) for name, head in sections if (out / f"{name}.md").exists()]
    (out / "summary.md").write_text(summary_markdown(title, span, parts))


SUMMARY = (("fid_vs_nfe", "FID at infinite n against NFE"), ("vs_reference", "Every row against the reference"),
           ("cost", "Cost of every distilled model"), ("jobs", "Where the time went"))


# -- ablations: one factor at a time around the default ------------------------------

SIGNIFICANCE_RULE = (
    "Each row against the default, paired over the S evaluation seed sets both share: the mean per-set difference "
    "of FID at infinite n ± its standard error. Where both are trained models, each side is the mean of its T models "
    "(the default: its training seeds, the rows 'default, another training seed'; a setting the claims trained more "
    "often: all of its), each one draw of its training, so the variance adds s_train^2 (1 / T_a + 1 / T_b), s_train "
    "the spread between training seeds pooled over every setting with several (one model a side: 2 s_train^2; a "
    "row 'default, another training seed' is compared with the default's first model); with one training seed that "
    "noise is not measured and the row says so. Student's t "
    "with Welch-Satterthwaite degrees of freedom, two-sided; the marks control the false discovery rate over the "
    "table's {m} comparisons (Benjamini-Hochberg): *larger than noise* when q < 0.05, else *within noise*. "
    "'80 % power': the smallest difference the comparison detects with 80 % power.")


def ablation_table(records: list[dict], table: str = "ablations") -> tuple[pd.DataFrame, dict]:
    """One row per ablation run: its FID at infinite n, the paired difference to the
    default (training noise of both sides included) with its p value, its
    Benjamini-Hochberg q over the table and a significance mark, the effect it detects
    with 80 % power, the ratio of the bias-free FIDs; and the default's spread over
    training seeds. A setting trained with several seeds (the default's `train_seed`
    rows; the claims' extra seeds, table `replicas`) enters as the mean of its models,
    and the training noise is the spread pooled over every setting with several seeds:
    s_train^2 (1 / T_a + 1 / T_b) for T_a and T_b models a side."""
    recs = in_table(records, table)
    default = next((r for r in recs if r.get("meta", {}).get("factor") == "default"), None)
    if default is None:
        raise UserError(f"the rows of {table} lack the default row")
    runs = seed_groups(recs + [x for x in in_table(records, "replicas") if x.get("family") == default.get("family")])
    seeds = runs[("default", "")]
    trained = default.get("kind") == "distilled"  # a training-free sampler has no training-seed spread
    s2, df_train = pooled_training_variance(runs.values()) if trained else (0.0, 0)
    s_train = math.sqrt(s2) if s2 == s2 else float("nan")
    unmeasured = trained and df_train < 1
    ref = reference(records)
    rows = []
    for r in recs:
        m = r.get("meta", {})
        a, b = ([r], seeds[:1]) if m.get("factor") == "train_seed" else (runs[group_key(r)], seeds)
        sd = s_train * math.sqrt(1 / len(a) + 1 / len(b)) if trained and r.get("kind") == "distilled" else None
        d = stats.paired_rows(combination([(x, 1 / len(a)) for x in a]), combination([(x, 1 / len(b)) for x in b]),
                              train_sd=sd, train_seeds=df_train + 1, per_side=len(a))
        row = {"factor": "default" if m.get("factor") == "default" else m.get("factor_name", m.get("factor")),
               "value": m.get("value", ""), "NFE": r["nfe"], "models": len(a), "FID (n)": r["fid"], "FID inf": r[Q],
               "FID inf std": r.get(f"{Q}_std", float("nan")), "- default": d["diff"], "- default std": d["se"],
               "p": d["p"], "80 % power": stats.power80(d["se"], d["df"]),
               "vs default": stats.ratio(values(r), values(default))[0], "_paired": d}
        if ref is not None and not trained:  # samplers: also against the reference sampler, paired
            e = stats.paired_rows(r, ref)
            row |= {"- reference": e["diff"], "- reference std": e["se"], "p (reference)": e["p"],
                    "vs reference": "larger than noise" if stats.significant(e) else "within noise"}
        rows.append(row)
    others = [i for i, r in enumerate(recs) if r is not default]
    qs = stats.benjamini_hochberg([rows[i]["p"] for i in others])
    for row in rows:
        row["q (BH)"], row["significance"] = float("nan"), ""
    for i, q in zip(others, qs):
        d = rows[i]["_paired"]
        rows[i]["q (BH)"] = q
        rows[i]["significance"] = ("no spread measured" if d["se"] != d["se"] else
                                   ("larger than noise" if q < 0.05 else "within noise")
                                   + ("; training noise not measured" if unmeasured else ""))
    means = [x[Q] for x in seeds]
    spread = {"train_seeds": len(means), "fid_mean": float(np.mean(means)),
              "fid_std": float(np.std(means, ddof=1)) if trained and len(means) > 1 else 0.0 if not trained
              else float("nan"), "pooled_sd": s_train, "pooled_df": df_train,
              "description": default.get("meta", {}).get("description", ""), "comparisons": len(others),
              "training_noise_measured": not unmeasured}
    return pd.DataFrame(rows), spread


def group_key(r: dict) -> tuple[str, str]:
    """The setting an ablation row or a replica measures: (factor, value); the default's
    other training seeds are the default."""
    m = r.get("meta", {})
    return ("default", "") if m.get("factor") in ("default", "train_seed") else (m.get("factor"), m.get("value", ""))


def seed_groups(recs: list[dict]) -> dict:
    """{(factor, value): the setting's models over their training seeds}, the ablation
    table's row first."""
    out: dict = {}
    for r in sorted(recs, key=lambda r: "replica" in r.get("meta", {})):
        out.setdefault(group_key(r), []).append(r)
    return out


def pooled_training_variance(groups) -> tuple[float, int]:
    """The spread of FID at infinite n between training seeds, pooled over the settings
    trained with several: (s^2, degrees of freedom); (NaN, 0) where none is."""
    ss = df = 0
    for g in groups:
        if len(g) > 1:
            x = np.asarray([r[Q] for r in g], float)
            ss, df = ss + float(((x - x.mean()) ** 2).sum()), df + len(g) - 1
    return (ss / df, df) if df else (float("nan"), 0)


def ablation_metrics(df: pd.DataFrame) -> dict:
    """An ablation table's rows for DVC, nested by factor and value: FID at infinite n, its
    std over the seed sets, the paired difference to the default (± its standard error,
    training noise included) and its BH q."""
    out: dict = {}
    seen: dict = {}
    for _, row in df.iterrows():
        factor = str(row["factor"])
        value = str(row["value"]) if str(row["value"]) else "default"
        seen[(factor, value)] = seen.get((factor, value), 0) + 1
        if seen[(factor, value)] > 1:
            value = f"{value}#{seen[(factor, value)]}"
        out.setdefault(factor, {})[value] = {
            "fid_inf": _finite(row["FID inf"]), "fid_inf_std": _finite(row["FID inf std"]),
            "minus_default": _finite(row["- default"]), "minus_default_se": _finite(row["- default std"]),
            "q_bh": _finite(row["q (BH)"])}
    return out


def write_ablation_dir(fid_files, out_dir, parts: Parts = Parts()) -> None:
    """One ablation table ({csv,md,tex}) per ablation group of the rows (each method's
    rows name theirs, e.g. `ablations`, `ablations_o2mkd`), titled by the family of its
    rows (`parts.labels`), into out_dir as a whole folder."""
    records = load_records(fid_files)
    tables = list(dict.fromkeys(t for r in records for t in r.get("tables", ()) if t.startswith("ablations")))
    metrics: dict = {}
    with atomic_dir(out_dir, "ablation-table") as out:
        for table in tables:
            if table in parts.ablation_tables:  # a method writes this one itself
                parts.ablation_tables[table](records, out)
                continue
            df, spread = ablation_table(records, table)
            df = df.drop(columns="_paired")
            shown = df.copy() if (df["models"] > 1).any() else df.drop(columns="models")  # the claims' replicas
            shown["vs default"] = shown["vs default"].map(lambda v: f"{v:.2f}x")
            note = SIGNIFICANCE_RULE.format(m=spread["comparisons"])
            if "- reference" in df:
                note = ("Training-free samplers: no training-seed spread enters; '- reference' is each row minus the "
                        f"reference sampler, paired the same way.\n\n{note}")
            elif spread["train_seeds"] > 1:
                note = (f"Default over {spread['train_seeds']} training seeds: FID at infinite n "
                        f"{spread['fid_mean']:.2f} ± {spread['fid_std']:.2f}.\n\n{note}")
            nfe = sorted(set(df["NFE"]))
            at = f"NFE {int(nfe[0])}" if len(nfe) == 1 else "each row's NFE"
            intro = (f"Each row changes one factor of the default and keeps the rest; FID at {at}"
                     f" at the evaluated n and at infinite n (lower is better; means over "
                     f"the evaluation seed sets); 'vs default': the ratio of FIDs at infinite n. Default: "
                     f"{spread['description'] or 'the config'}.")
            family = next(r.get("family", "") for r in in_table(records, table))
            title = f"{parts.labels.get(family, family.upper())} ablations (one factor at a time)"
            write_table(out, table, df, title, note, shown, intro)
            metrics[table] = ablation_metrics(df)
        # for DVC (dvc.yaml): every ablation row, nested by table, factor and value
        (out / "ablation_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")


# -- cost of every distilled model ------------------------------------------------------

COST_COLS = ["method", "NFE", "FID inf", "fine-tune s (this stage)", "fine-tune s (to reach it)",
             "teacher-cache s", "teacher NFE", "student optimizer steps"]


def cache_seconds(meta: dict) -> float | None:
    """Wall clock of building the trajectory cache(s) a model was trained on (their metadata)."""
    traj = (meta.get("args") or {}).get("trajectories")
    paths = [traj] if isinstance(traj, str) else list(traj or [])
    times = [read_json_object(meta_path(p), (), "metadata sidecar").get("wall_time") for p in paths
             if meta_path(p).exists()]
    return sum(times) if times else None


def cost_table(records: list[dict]) -> pd.DataFrame:
    """One row per distilled model (a model serving several rows: FID left out)."""
    by_model: dict[str, list[dict]] = {}
    for r in records:
        if r.get("kind") == "distilled" and r.get("model"):
            by_model.setdefault(r["model"], []).append(r)
    rows = []
    for model, recs in by_model.items():
        meta = model_meta(recs[0])
        if meta is None:
            continue
        if "wall_time" not in meta:
            raise UserError(f"{meta_path(model)}: a trained model's metadata without its 'wall_time'")
        nfe = meta.get("nfe", "any")
        rows.append({"method": recs[0]["label"], "family": recs[0].get("family"),
                     "NFE": "/".join(map(str, nfe)) if isinstance(nfe, list) else nfe,
                     "FID inf": recs[0].get(Q, recs[0]["fid"]) if len(recs) == 1 else None,
                     "fine-tune s (this stage)": meta["wall_time"],
                     "fine-tune s (to reach it)": meta.get("cumulative_wall_time", meta["wall_time"]),
                     "teacher-cache s": cache_seconds(meta),
                     "teacher NFE": meta.get("cumulative_teacher_nfe", meta.get("teacher_nfe")),
                     "student optimizer steps": meta.get("cumulative_optimizer_steps", meta.get("optimizer_steps"))})
    return pd.DataFrame(rows, columns=["family"] + COST_COLS)


def _ratio(a, b):
    return a / b if a is not None and b and a == a and b == b else None


def side_by_side(df: pd.DataFrame, fast: str, slow: str) -> pd.DataFrame:
    """Two method families at every NFE both reached, with the time ratio slow / fast."""
    a, b = (df[df["family"] == f].set_index("NFE") for f in (fast, slow))
    rows = []
    for nfe in sorted(set(a.index) & set(b.index), key=str):
        s, p = a.loc[nfe], b.loc[nfe]
        s_total = s["fine-tune s (to reach it)"] + (s["teacher-cache s"] or 0)
        F, S = fast.upper(), slow.upper()
        rows.append({"NFE": nfe, f"{F} FID inf": s["FID inf"], f"{S} FID inf": p["FID inf"],
                     f"{F} fine-tune s": s["fine-tune s (to reach it)"], f"{F} fine-tune + cache s": s_total,
                     f"{S} fine-tune s (all rounds)": p["fine-tune s (to reach it)"],
                     f"{S} / {F} time": _ratio(p["fine-tune s (to reach it)"], s["fine-tune s (to reach it)"]),
                     f"{S} / {F} time ({F} incl. cache)": _ratio(p["fine-tune s (to reach it)"], s_total),
                     f"{S} / {F} teacher NFE": _ratio(p["teacher NFE"], s["teacher NFE"]),
                     f"{S} / {F} optimizer steps": _ratio(p["student optimizer steps"], s["student optimizer steps"])})
    return pd.DataFrame(rows)


def write_cost_table(out: Path, df: pd.DataFrame, compare: tuple) -> None:
    side = side_by_side(df, *compare) if compare else pd.DataFrame()
    note = ""
    if not side.empty:
        write_table(out, f"cost_{compare[0]}_vs_{compare[1]}", side, f"{compare[0].upper()} and "
                    f"{compare[1].upper()} at equal NFE")
        note = f"## {compare[0].upper()} and {compare[1].upper()} at equal NFE\n\n" + to_markdown(side)
    write_table(out, "cost", df[COST_COLS], "Cost of every distilled model", note, _fmt_counts(df[COST_COLS]),
                "Fine-tuning wall clock (the runner's, summed over resumed runs), teacher network evaluations and "
                "student optimizer steps. PD counts every round from the trained teacher to the row's step count; "
                "SFD's teacher NFE are those of its trajectory cache (built once, its time in 'teacher-cache s'). "
                "A model that serves several rows (SFD-v, O2MKD) has its FIDs in those rows.")


def _fmt_counts(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in ("teacher NFE", "student optimizer steps"):
        df[c] = df[c].map(lambda v: "—" if v is None or v != v else f"{int(v):,}")
    df["NFE"] = df["NFE"].astype(str)
    return df
