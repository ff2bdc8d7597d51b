"""What the distilled models cost (fine-tuning wall clock, teacher network evaluations,
optimizer steps; two families side by side at equal NFE) and where the time of the jobs
that made a page of tables went (`diffdistill.jobs`), with its dated summary page."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import meta_path
from ..errors import UserError
from ..files import read_json_object
from ..records import Q, model_meta
from .format import to_markdown, write_table

COST_COLS = ["method", "NFE", "FID inf", "fine-tune s (this stage)", "fine-tune s (to reach it)",
             "teacher-cache s", "teacher NFE", "student optimizer steps"]


def cache_total(meta: dict, key: str) -> float | None:
    """The sum of `key` over the metadata of the trajectory cache(s) a model was trained on
    (None: no cache with metadata)."""
    traj = (meta.get("args") or {}).get("trajectories")
    paths = [traj] if isinstance(traj, str) else list(traj or [])
    values = [read_json_object(meta_path(p), (), "metadata sidecar").get(key, 0) for p in paths
              if meta_path(p).exists()]
    return sum(values) if values else None


def cache_seconds(meta: dict) -> float | None:
    """Wall clock of building the trajectory cache(s) a model was trained on (their metadata)."""
    return cache_total(meta, "wall_time")


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


def write_job_table(out: Path, files, tables: tuple = ("main",)) -> None:
    """jobs.{csv,md,tex}: where the time of the jobs that made these tables went
    (`diffdistill.jobs`), with their span: the target's wall clock by the jobs' own clocks;
    and summary.md: the dated page of the main tables (date, machine, commit, wall clock)."""
    from ..jobs import job_table

    df, span = job_table(files)
    if df.empty:
        return
    title = "Main job" if tables == ("main",) else f"Tables of {' + '.join(tables)}"
    write_job_page(out, df, span, title, SUMMARY)


def write_job_page(out: Path, df: pd.DataFrame, span: dict, title: str, sections,
                   heading: str = "Where the time went: the jobs that made these tables") -> None:
    """jobs.{csv,md,tex} from `jobs.job_table`'s (df, span), and summary.md: the dated
    page (`jobs.summary_markdown`) of `sections`, (file stem in `out`, heading) pairs."""
    from ..jobs import summary_markdown

    write_table(out, "jobs", df, heading, intro=(
        f"{span['jobs']} jobs, {span['process_seconds']:.0f} process seconds in all (start-up included); from the "
        f"first job's start to the last one's end: **{span['seconds']:.0f} s ({span['seconds'] / 60:.1f} min)**, "
        "by the jobs' own clocks (the metadata sidecars' started_at and finished_at; Snakemake's planning before the "
        "first job is not counted). Jobs run side by side on the available cores."), fmt="{:.1f}")
    parts = [(head, (out / f"{name}.md").read_text()) for name, head in sections if (out / f"{name}.md").exists()]
    (out / "summary.md").write_text(summary_markdown(title, span, parts))


SUMMARY = (("fid_vs_nfe", "FID at infinite n against NFE"), ("vs_reference", "Every row against the reference"),
           ("cost", "Cost of every distilled model"), ("jobs", "Where the time went"))
