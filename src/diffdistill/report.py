"""Tables from result files: FIDs from the FID JSONs, wall times and costs from the
models' metadata sidecars (never from logs)."""
from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from .io import UserError, read_json

FT = "fine-tune s (per NFE)"


def _fine_tune_seconds(model_meta: str | None) -> float | None:
    if not model_meta:
        return None
    p = Path(model_meta)
    if not p.exists():
        raise UserError(f"model metadata not found: {p}")
    return json.loads(p.read_text()).get("wall_time")


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


def write_tables(fid_files: list[str], out_dir, floor: str | None = None) -> None:
    """Write fid_vs_nfe.{csv,md} into out_dir, atomically as a whole folder."""
    files = ([floor] if floor else []) + list(fid_files)
    df = fid_table([f for f in files if read_json(f).get("nfe") is not None])
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        df.to_csv(tmp / "fid_vs_nfe.csv", index=False, float_format="%.4f")
        note = ""
        if floor:
            fl = read_json(floor)
            note = (f"\nFloor (real half vs real half, {fl['num_samples']} images each): "
                    f"{fl['fid']:.2f} ± {fl['fid_std']:.2f} over {len(fl['fid_splits'])} splits; "
                    "differences of that size are noise.\n")
        (tmp / "fid_vs_nfe.md").write_text("# FID against NFE\n\n" + to_markdown(df) + note)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
