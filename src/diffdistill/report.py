"""Tables from result files only: metrics from the FID JSONs (each carries its row's
label, family, tables and columns), wall times and costs from the models' metadata
sidecars (never from logs). A row evaluated on several seed sets shows their mean
(CSV: also `<column> std`)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .io import UserError, atomic_dir, meta_path, read_json

FT = "fine-tune s (per NFE)"


def load_records(files) -> list[dict]:
    """FID records merged over seed sets: one per row, in first-seen order, with `fid`
    the mean, `fid_std` and `fid_sets` (the per-set values)."""
    by: dict[str, dict] = {}
    for f in files:
        r = read_json(f)
        key = r.get("name") or r["row"]
        if key in by:
            by[key]["fid_sets"].append(r["fid"])
        else:
            by[key] = {**r, "fid_sets": [r["fid"]]}
    for r in by.values():
        r["fid"] = float(np.mean(r["fid_sets"]))
        r["fid_std"] = float(np.std(r["fid_sets"], ddof=1)) if len(r["fid_sets"]) > 1 else float("nan")
    return list(by.values())


def in_table(records, table: str) -> list[dict]:
    return [r for r in records if table in r.get("tables", ())]


def _cell(r: dict, table: str) -> tuple[str, str]:
    """(row label, column) of a record in `table` (a row may say so per table)."""
    spec = r.get("meta", {}).get(table, {})
    return spec.get("row", r["label"]), spec.get("col", r.get("column") or f"NFE {r['nfe']}")


def model_meta(r: dict) -> dict | None:
    m = r.get("model")
    return read_json(meta_path(m)) if m and meta_path(m).exists() else None


def fine_tune_seconds(meta: dict | None) -> float | None:
    """Training time to reach a model: PD and SFD's second stage count their earlier stages."""
    if meta is None or "wall_time" not in meta:
        return None
    return meta.get("cumulative_wall_time", meta["wall_time"])


def fid_table(records: list[dict], table: str = "main") -> pd.DataFrame:
    """Rows = row labels (first-seen order), columns = NFE, plus fine-tuning seconds."""
    rows: dict[str, dict] = {}
    for r in in_table(records, table):
        label, col = _cell(r, table)
        row = rows.setdefault(label, {"method": label})
        row[col] = r["fid"]
        if len(r["fid_sets"]) > 1:
            row[f"{col} std"] = r["fid_std"]
        if r.get("kind") == "distilled":
            wall = fine_tune_seconds(model_meta(r))
            if wall is not None:
                row.setdefault(FT, {})[r["nfe"]] = wall
    if not rows:
        raise UserError(f"no results in table '{table}'")
    df = pd.DataFrame(list(rows.values()))
    nfe_cols = sorted([c for c in df.columns if c.startswith("NFE ") and not c.endswith(" std")],
                      key=lambda c: int(c.split()[1]))
    cols = ["method"] + [x for c in nfe_cols for x in (c, f"{c} std") if x in df.columns]
    if FT in df:
        df[FT] = df[FT].map(lambda d: " / ".join(f"{d[k]:.0f}" for k in sorted(d)) if isinstance(d, dict) else "")
        cols.append(FT)
    return df[cols]


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


def write_tables(fid_files: list[str], out_dir, floor: str | None = None, profile: str | None = None,
                 compare: tuple = ("sfd", "pd")) -> None:
    """fid_vs_nfe.{csv,md} (main table), cost.{csv,md} and, when its rows and the profile
    are given, o2mkd.{csv,md}, into out_dir, atomically as a whole folder."""
    records = load_records(fid_files)
    df = fid_table(records, "main")
    prof = read_json(profile) if profile else None
    o2 = o2mkd_table(records, prof) if prof and in_table(records, "o2mkd") else None
    cost = cost_table(records)
    with atomic_dir(out_dir) as tmp:
        df.to_csv(tmp / "fid_vs_nfe.csv", index=False, float_format="%.4f")
        # for DVC (dvc.yaml): the plot of FID against NFE, and every row's FID as metrics
        fid_long(df).to_csv(tmp / "fid_vs_nfe_long.csv", index=False, float_format="%.4f")
        metrics = {r.get("name") or r["row"]: r["fid"] for r in records}
        if floor:
            metrics["floor"] = read_json(floor)["fid"]
        (tmp / "fid_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        note = ""
        if floor:
            fl = read_json(floor)
            note = (f"\nFloor (real half vs real half, {fl['num_samples']} images each): "
                    f"{fl['fid']:.2f} ± {fl['fid_std']:.2f} over {len(fl['fid_splits'])} splits; "
                    "differences of that size are noise.\n")
        (tmp / "fid_vs_nfe.md").write_text("# FID against NFE\n\n" + to_markdown(df) + note)
        if o2 is not None:
            write_o2mkd_table(tmp, o2, prof)
        if not cost.empty:
            write_cost_table(tmp, cost, compare)


# -- ablations: one factor at a time around the default ------------------------------

def ablation_table(records: list[dict]) -> pd.DataFrame:
    rows, default = [], None
    for r in in_table(records, "ablations"):
        m = r.get("meta", {})
        if m.get("factor") == "default":
            default = r["fid"]
        rows.append({"factor": "default" if m.get("factor") == "default" else m.get("factor_name", m.get("factor")),
                     "value": m.get("value", ""), "NFE": r["nfe"], "FID": r["fid"]})
    if default is None:
        raise UserError("the ablation rows lack the default row")
    df = pd.DataFrame(rows)
    df["vs default"] = df["FID"] / default
    return df


def write_ablation_dir(fid_files, out_dir, default_desc: str = "") -> None:
    """ablations.{csv,md} into out_dir, atomically as a whole folder."""
    df = ablation_table(load_records(fid_files))
    shown = df.copy()
    shown["vs default"] = shown["vs default"].map(lambda v: f"{v:.2f}x")
    with atomic_dir(out_dir) as out:
        df.to_csv(out / "ablations.csv", index=False, float_format="%.4f")
        (out / "ablations.md").write_text(
            "# SFD ablations (one factor at a time)\n\nEach row changes one factor of the default SFD student "
            f"and keeps the rest; FID at NFE {int(df['NFE'].iloc[0])}, same evaluation seeds as the main table. "
            f"Default: {default_desc or 'the config'}.\n\n" + to_markdown(shown))


# -- cost of every distilled model ------------------------------------------------------

COST_COLS = ["method", "NFE", "FID", "fine-tune s (this stage)", "fine-tune s (to reach it)",
             "teacher-cache s", "teacher NFE", "student optimizer steps"]


def _cache_seconds(meta: dict) -> float | None:
    traj = (meta.get("args") or {}).get("trajectories")
    paths = [traj] if isinstance(traj, str) else list(traj or [])
    times = [read_json(meta_path(p)).get("wall_time") for p in paths if meta_path(p).exists()]
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
        if meta is None or "wall_time" not in meta:
            continue
        nfe = meta.get("nfe", "any")
        rows.append({"method": recs[0]["label"], "family": recs[0].get("family"),
                     "NFE": "/".join(map(str, nfe)) if isinstance(nfe, list) else nfe,
                     "FID": recs[0]["fid"] if len(recs) == 1 else None,
                     "fine-tune s (this stage)": meta["wall_time"],
                     "fine-tune s (to reach it)": meta.get("cumulative_wall_time", meta["wall_time"]),
                     "teacher-cache s": _cache_seconds(meta),
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
        rows.append({"NFE": nfe, f"{F} FID": s["FID"], f"{S} FID": p["FID"],
                     f"{F} fine-tune s": s["fine-tune s (to reach it)"], f"{F} fine-tune + cache s": s_total,
                     f"{S} fine-tune s (all rounds)": p["fine-tune s (to reach it)"],
                     f"{S} / {F} time": _ratio(p["fine-tune s (to reach it)"], s["fine-tune s (to reach it)"]),
                     f"{S} / {F} time ({F} incl. cache)": _ratio(p["fine-tune s (to reach it)"], s_total),
                     f"{S} / {F} teacher NFE": _ratio(p["teacher NFE"], s["teacher NFE"]),
                     f"{S} / {F} optimizer steps": _ratio(p["student optimizer steps"], s["student optimizer steps"])})
    return pd.DataFrame(rows)


def write_cost_table(out: Path, df: pd.DataFrame, compare: tuple) -> None:
    df[COST_COLS].to_csv(out / "cost.csv", index=False, float_format="%.4f")
    text = ("# Cost of every distilled model\n\nFine-tuning wall clock (the runner's, summed over resumed runs), "
            "teacher network evaluations and student optimizer steps. PD counts every round from the trained "
            "teacher to the row's step count; SFD's teacher NFE are those of its trajectory cache (built once, "
            "its time in 'teacher-cache s'). A model that serves several rows (SFD-v, O2MKD) has its FIDs "
            "in those rows.\n\n" + to_markdown(_fmt_counts(df[COST_COLS])))
    side = side_by_side(df, *compare) if compare else pd.DataFrame()
    if not side.empty:
        side.to_csv(out / f"cost_{compare[0]}_vs_{compare[1]}.csv", index=False, float_format="%.4f")
        text += f"\n## {compare[0].upper()} and {compare[1].upper()} at equal NFE\n\n" + to_markdown(side)
    (out / "cost.md").write_text(text)


def _fmt_counts(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in ("teacher NFE", "student optimizer steps"):
        df[c] = df[c].map(lambda v: "—" if v is None or v != v else f"{int(v):,}")
    df["NFE"] = df["NFE"].astype(str)
    return df


# -- O2MKD: teacher, one-to-one KD, O2MKD with N students -------------------------------

def o2mkd_table(records: list[dict], profile: dict) -> pd.DataFrame:
    """Rows: the models of the O2MKD table; columns: FID per (solver, NFE), then
    parameters and MACs per step, throughput against the first profiled model."""
    prof = {r["model"]: r for r in profile["rows"]}
    ref = profile["rows"][0]
    rows: dict[str, dict] = {}
    for r in in_table(records, "o2mkd"):
        label, col = _cell(r, "o2mkd")
        row = rows.setdefault(label, {"model": label, "_path": r["model"]})
        row[col] = r["fid"]
    out = []
    for row in rows.values():
        p = prof.get(row.pop("_path"), {})
        out.append({**row, "params (per step)": p.get("params_per_step"), "params (total)": p.get("params_total"),
                    "MMACs / step": p.get("macs_per_step", float("nan")) / 1e6,
                    "images/s": p.get("images_per_second"),
                    "x teacher": p["images_per_second"] / ref["images_per_second"] if p else None})
    return pd.DataFrame(out)


def write_o2mkd_table(out: Path, df: pd.DataFrame, profile: dict) -> None:
    df.to_csv(out / "o2mkd.csv", index=False, float_format="%.4f")
    shown = df.copy()
    for c in ("params (per step)", "params (total)"):
        shown[c] = shown[c].map(lambda v: "—" if v is None or v != v else f"{int(v):,}")
    nfe = profile["rows"][0].get("nfe")
    (out / "o2mkd.md").write_text(
        "# O2MKD and one-to-one KD\n\nEach O2MKD student owns a contiguous noise range; one student "
        "runs per step, so params and MACs per step are one student's (MACs = FlopCounterMode FLOPs / 2). "
        f"Throughput: Euler (DDIM) sampling at NFE {nfe}, measured one model after the other in one process "
        "(profile-models). The last FID column is O2MKD composed with a fast solver (the students replace "
        "the teacher network under DPM-Solver++(3M)).\n\n" + to_markdown(shown))
