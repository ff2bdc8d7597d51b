"""Tables from result files: FIDs from the FID JSONs, wall times and costs from the
models' metadata sidecars (never from logs)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .io import UserError, atomic_dir, read_json

FT = "fine-tune s (per NFE)"


def _fine_tune_seconds(model_meta: str | None) -> float | None:
    if not model_meta:
        return None
    p = Path(model_meta)
    if not p.exists():
        raise UserError(f"model metadata not found: {p}")
    meta = json.loads(p.read_text())
    # Progressive Distillation: the time to reach this step count, all rounds so far
    return meta.get("cumulative_wall_time", meta.get("wall_time"))


def fid_table(fid_files: list[str]) -> pd.DataFrame:
    """Rows = methods (in first-seen order), columns = NFE, plus fine-tuning seconds."""
    recs = [read_json(f) for f in fid_files]
    rows: dict[str, dict] = {}
    for r in recs:
        row = rows.setdefault(r["label"], {"method": r["label"]})
        row[f"NFE {r['nfe']}"] = r["fid"]
        wall = _fine_tune_seconds(r.get("model"))
        if wall is not None:
            row.setdefault(FT, {})[r["nfe"]] = wall
    df = pd.DataFrame(list(rows.values()))
    nfe_cols = sorted([c for c in df.columns if c.startswith("NFE ")], key=lambda c: int(c.split()[1]))
    if FT in df:
        df[FT] = df[FT].map(
            lambda d: " / ".join(f"{d[k]:.0f}" for k in sorted(d)) if isinstance(d, dict) else "")
        return df[["method", *nfe_cols, FT]]
    return df[["method", *nfe_cols]]


def to_markdown(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    def cell(v):
        if isinstance(v, float):
            return "—" if math.isnan(v) else floatfmt.format(v)
        return str(v) if v is not None and v == v else "—"
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def fid_long(df: pd.DataFrame) -> pd.DataFrame:
    """The FID table in long form: one (method, nfe, fid) row per filled cell."""
    nfe_cols = [c for c in df.columns if c.startswith("NFE ")]
    rows = [{"method": r["method"], "nfe": int(c.split()[1]), "fid": r[c]}
            for _, r in df.iterrows() for c in nfe_cols if r[c] == r[c]]
    return pd.DataFrame(rows, columns=["method", "nfe", "fid"])


def _row_key(r: dict) -> str:
    """'students/sfd/default/nfe2'; 'target/nfe2' (its JSON says row 'target'); 'floor'."""
    nfe = r.get("nfe")
    return r["row"] if nfe is None or r["row"].endswith(f"/nfe{nfe}") else f"{r['row']}/nfe{nfe}"


def write_tables(fid_files: list[str], out_dir, floor: str | None = None,
                 o2mkd_fid: list[str] | None = None, o2mkd_profile: str | None = None) -> None:
    """Write fid_vs_nfe.{csv,md} (and cost.{csv,md}, o2mkd.{csv,md} when their inputs
    are given) into out_dir, atomically as a whole folder."""
    files = ([floor] if floor else []) + list(fid_files)
    df = fid_table([f for f in files if read_json(f).get("nfe") is not None])
    with atomic_dir(out_dir) as tmp:
        df.to_csv(tmp / "fid_vs_nfe.csv", index=False, float_format="%.4f")
        # for DVC (dvc.yaml): the plot of FID against NFE, and every row's FID as metrics
        fid_long(df).to_csv(tmp / "fid_vs_nfe_long.csv", index=False, float_format="%.4f")
        metrics = {_row_key(r): r["fid"] for r in map(read_json, files + list(o2mkd_fid or []))}
        (tmp / "fid_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        note = ""
        if floor:
            fl = read_json(floor)
            note = (f"\nFloor (real half vs real half, {fl['num_samples']} images each): "
                    f"{fl['fid']:.2f} ± {fl['fid_std']:.2f} over {len(fl['fid_splits'])} splits; "
                    "differences of that size are noise.\n")
        (tmp / "fid_vs_nfe.md").write_text("# FID against NFE\n\n" + to_markdown(df) + note)
        profile = read_json(o2mkd_profile) if o2mkd_profile else None
        if o2mkd_fid and profile:
            write_o2mkd_table(tmp, o2mkd_fid, profile)
        write_cost_table(tmp, list(fid_files), profile)


# -- SFD ablations (the paper's Table 1): one factor at a time around the default -------

FACTOR_NAMES = {"solver": "teacher solver", "final_step": "teacher final step", "afs": "AFS",
                "t_min": "t_min", "loss": "loss", "K": "K (teacher steps per student step)",
                "num": "training trajectories"}


def parse_ablation_spec(spec: str) -> tuple[str, str, str]:
    """'factor=value=path' (the default row: 'default==path')."""
    parts = spec.split("=", 2)
    if len(parts) != 3:
        raise UserError(f"ablation spec {spec!r} is not factor=value=path")
    return parts[0], parts[1], parts[2]


def ablation_table(runs: list[tuple[str, str, str]]) -> pd.DataFrame:
    rows, default = [], None
    for factor, value, path in runs:
        r = read_json(path)
        if factor == "default":
            default = r["fid"]
        rows.append({"factor": "default" if factor == "default" else FACTOR_NAMES.get(factor, factor),
                     "value": value, "NFE": r["nfe"], "FID": r["fid"]})
    if default is None:
        raise UserError("the ablation runs lack the default row")
    df = pd.DataFrame(rows)
    df["vs default"] = df["FID"] / default
    return df


def write_ablation_dir(out_dir, runs, default_desc: str = "") -> None:
    """ablations.{csv,md} into out_dir, atomically as a whole folder."""
    df = ablation_table(runs)
    shown = df.copy()
    shown["vs default"] = shown["vs default"].map(lambda v: f"{v:.2f}x")
    with atomic_dir(out_dir) as out:
        df.to_csv(out / "ablations.csv", index=False, float_format="%.4f")
        (out / "ablations.md").write_text(
            "# SFD ablations (one factor at a time)\n\nEach row changes one factor of the default SFD student "
            f"and keeps the rest; FID at NFE {int(df['NFE'].iloc[0])}, same evaluation seeds as the main table. "
            f"Default: {default_desc or 'the config'}.\n\n" + to_markdown(shown))


# -- cost of every distilled model (SFD, PD, O2MKD) -------------------------------------

COST_COLS = ["method", "NFE", "FID", "fine-tune s (this stage)", "fine-tune s (to reach it)",
             "teacher-cache s", "teacher NFE", "student optimizer steps"]


def _cost_row(meta: dict, fid: float | None) -> dict:
    method = meta.get("method", "?")
    if method == "o2mkd":
        name = f"O2MKD N={meta['num_students']}" + (" (one-to-one KD)" if meta["num_students"] == 1 else "")
    else:
        name = {"sfdv": "SFD-v"}.get(method, method.upper()) + (" stage 2" if meta.get("stage") == 2 else "")
    nfe = meta.get("nfe", "any")
    row = {"method": name, "NFE": "/".join(map(str, nfe)) if isinstance(nfe, list) else nfe, "FID": fid, "fine-tune s (this stage)": meta["wall_time"],
           "fine-tune s (to reach it)": meta.get("cumulative_wall_time", meta["wall_time"]),
           "teacher-cache s": None,
           "teacher NFE": meta.get("cumulative_teacher_nfe", meta.get("teacher_nfe")),
           "student optimizer steps": meta.get("cumulative_optimizer_steps", meta.get("optimizer_steps"))}
    traj = (meta.get("args") or {}).get("trajectories")
    if method == "sfd" and traj and Path(str(traj) + ".meta.json").exists():
        row["teacher-cache s"] = read_json(str(traj) + ".meta.json").get("wall_time")
    return row


def cost_table(fid_files: list[str], profile: dict | None = None) -> pd.DataFrame:
    rows, seen = [], set()
    for f in fid_files:
        r = read_json(f)
        if not r.get("model") or r["model"] in seen or not Path(r["model"]).exists():
            continue
        seen.add(r["model"])  # one row per model: SFD-v serves several NFE from one checkpoint
        meta = read_json(r["model"])
        if meta.get("method") in ("sfd", "pd", "sfdv"):
            rows.append(_cost_row(meta, None if isinstance(meta.get("nfe"), list) else r["fid"]))
    for pr in (profile or {}).get("rows", []):
        mp = Path(pr["model"] + ".meta.json")
        if mp.exists() and read_json(mp).get("method") == "o2mkd":
            rows.append(_cost_row(read_json(mp), None))
    rows.sort(key=lambda r: ({"SFD": 0, "PD": 1}.get(r["method"], 2),
                             r["NFE"] if isinstance(r["NFE"], int) else 999, r["method"]))
    return pd.DataFrame(rows, columns=COST_COLS)


def _ratio(a, b):
    return a / b if a is not None and b and a == a and b == b else None


def sfd_vs_pd(df: pd.DataFrame) -> pd.DataFrame:
    """SFD and PD side by side at every NFE both reached, with the time ratio."""
    sfd, pdr = df[df["method"] == "SFD"].set_index("NFE"), df[df["method"] == "PD"].set_index("NFE")
    rows = []
    for nfe in sorted(set(sfd.index) & set(pdr.index)):
        s, p = sfd.loc[nfe], pdr.loc[nfe]
        s_total = s["fine-tune s (to reach it)"] + (s["teacher-cache s"] or 0)
        rows.append({"NFE": nfe, "SFD FID": s["FID"], "PD FID": p["FID"],
                     "SFD fine-tune s": s["fine-tune s (to reach it)"], "SFD fine-tune + cache s": s_total,
                     "PD fine-tune s (all rounds)": p["fine-tune s (to reach it)"],
                     "PD / SFD time": _ratio(p["fine-tune s (to reach it)"], s["fine-tune s (to reach it)"]),
                     "PD / SFD time (SFD incl. cache)": _ratio(p["fine-tune s (to reach it)"], s_total),
                     "PD / SFD teacher NFE": _ratio(p["teacher NFE"], s["teacher NFE"]),
                     "PD / SFD optimizer steps": _ratio(p["student optimizer steps"], s["student optimizer steps"])})
    return pd.DataFrame(rows)


def write_cost_table(out: Path, fid_files: list[str], profile: dict | None) -> None:
    df = cost_table(fid_files, profile)
    if df.empty:
        return
    df.to_csv(out / "cost.csv", index=False, float_format="%.4f")
    side = sfd_vs_pd(df)
    text = ("# Cost of every distilled model\n\nFine-tuning wall clock (the shared trainer's, summed over "
            "resumed runs), teacher network evaluations and student optimizer steps. PD counts every round "
            "from the trained teacher to the row's step count; SFD's teacher NFE are those of its "
            "trajectory cache (built once, its time in 'teacher-cache s'). O2MKD rows serve every step "
            "count; their FIDs are in o2mkd.md.\n\n" + to_markdown(_fmt_counts(df)))
    if not side.empty:
        side.to_csv(out / "cost_sfd_vs_pd.csv", index=False, float_format="%.4f")
        text += "\n## SFD and PD at equal NFE\n\n" + to_markdown(side)
    (out / "cost.md").write_text(text)


def _fmt_counts(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in ("teacher NFE", "student optimizer steps"):
        df[c] = df[c].map(lambda v: "—" if v is None or v != v else f"{int(v):,}")
    df["NFE"] = df["NFE"].astype(str)
    return df


# -- O2MKD: teacher, one-to-one KD, O2MKD with N students -------------------------------

def o2mkd_table(fid_files: list[str], profile: dict) -> pd.DataFrame:
    """Rows: the teacher and one row per student count; columns: FID per (solver, NFE),
    parameters and MACs per step, throughput against the teacher (first profile row)."""
    prof = {Path(r["model"]).parent.name if "o2mkd" in r["model"] else "teacher": r for r in profile["rows"]}
    names = {"euler": "DDIM", "dpmpp3m": "DPM-Solver++(3M)"}
    rows: dict[str, dict] = {}
    cols = []
    for f in fid_files:
        r = read_json(f)
        head = r["row"].rsplit("/nfe", 1)[0]
        if head.startswith("teacher-"):
            key, solver = "teacher", head[len("teacher-"):]
        else:  # o2mkd/n{N}-{solver}
            key, solver = head.split("/", 1)[1].split("-", 1)
        col = f"FID {names.get(solver, solver)} {r['nfe']}"
        if col not in cols:
            cols.append(col)
        rows.setdefault(key, {})[col] = r["fid"]
    ref = prof.get("teacher")
    out = []
    for key in sorted(rows, key=lambda k: -1 if k == "teacher" else int(k[1:])):
        n = 0 if key == "teacher" else int(key[1:])
        label = "teacher" if n == 0 else ("one-to-one KD (N=1)" if n == 1 else f"O2MKD N={n}")
        p = prof.get(key, {})
        row = {"model": label, **{c: rows[key].get(c) for c in cols},
               "params (per step)": p.get("params_per_step"), "params (total)": p.get("params_total"),
               "MMACs / step": p.get("macs_per_step", float("nan")) / 1e6,
               "images/s": p.get("images_per_second"),
               "x teacher": p["images_per_second"] / ref["images_per_second"] if p and ref else None}
        out.append(row)
    return pd.DataFrame(out)


def write_o2mkd_table(out: Path, fid_files: list[str], profile: dict) -> None:
    df = o2mkd_table(fid_files, profile)
    df.to_csv(out / "o2mkd.csv", index=False, float_format="%.4f")
    shown = df.copy()
    for c in ("params (per step)", "params (total)"):
        shown[c] = shown[c].map(lambda v: "—" if v is None or v != v else f"{int(v):,}")
    nfe = profile["rows"][0].get("nfe")
    (out / "o2mkd.md").write_text(
        "# O2MKD and one-to-one KD\n\nEach O2MKD student owns a contiguous noise range; one student "
        "runs per step, so params and MACs per step are one student's. Throughput: Euler (DDIM) sampling "
        f"at NFE {nfe}, measured one model after the other in one process (profile-models). The last "
        "FID column is O2MKD composed with a fast solver (the students replace the teacher "
        "network under DPM-Solver++(3M)).\n\n" + to_markdown(shown))
