"""Two runs of one config, compared: the same tables and the same weights.

    python tests/compare_runs.py RUN_A RUN_B

RUN_A and RUN_B are checkouts (or copies) that ran the same config with the same seed,
for example before and after a refactoring. Every table (`results/**/*.csv`) must be
equal cell for cell, except the columns that hold wall-clock time (seconds, images/s,
time ratios, budgets priced in time) and the measured value of a claim about wall clock; every network (`results/**/*.pt`) must hold the same
tensors bit for bit, and every sample file (`results/**/*.npz`) the same arrays. Prints
what differs and exits 1, or one line of counts and exits 0.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

# a column measured in wall-clock time: "process s", "fine-tune s (this stage)", "images/s",
# "PD / SFD time", "budget to reach it"; and the claims plan's purchases, priced in seconds
TIMED = re.compile(r"(^|\W)s(\W|$)|seconds|images/s|^x |time|budget|^min$|bought|why")
TIMED_FILES = {"jobs.csv", "cost_sfd_vs_pd.csv"}  # every number in them is a clock, rows ordered by it


def tables(a: Path, b: Path) -> tuple[int, list[str]]:
    diffs, n = [], 0
    for fa in sorted(a.glob("results/**/*.csv")):
        fb = b / fa.relative_to(a)
        if not fb.exists():
            diffs.append(f"{fb}: missing")
            continue
        da, db = pd.read_csv(fa), pd.read_csv(fb)
        if fa.name in TIMED_FILES or "benchmark-runs" in fa.parts:
            da, db = (x.select_dtypes(exclude="number") for x in (da, db))
            da, db = (x.sort_values(list(x.columns)).reset_index(drop=True) for x in (da, db))
        if "rule" in da.columns and "ours" in da.columns:  # a claim measured in wall clock: its value is a clock
            for d in (da, db):
                d.loc[d["rule"].astype(str).str.contains("wall clock"), "ours"] = ""
        keep = [c for c in da.columns if not TIMED.search(c)]
        if list(da.columns) != list(db.columns):
            diffs.append(f"{fa.relative_to(a)}: columns {list(da.columns)} != {list(db.columns)}")
        elif not da[keep].equals(db[keep]):
            bad = [c for c in keep if not da[c].equals(db[c])]
            diffs.append(f"{fa.relative_to(a)}: columns {bad} differ")
        n += 1
    return n, diffs


def arrays(a: Path, b: Path) -> tuple[int, list[str]]:
    diffs, n = [], 0
    for fa in sorted([*a.glob("results/**/*.pt"), *a.glob("results/**/*.npz")]):
        rel = fa.relative_to(a)
        if "resume" in rel.parts:  # a training run's resume point, removed when it ends
            continue
        fb = b / rel
        if not fb.exists():
            diffs.append(f"{rel}: missing")
            continue
        if fa.suffix == ".npz":
            xa, xb = np.load(fa), np.load(fb)
            same = set(xa.files) == set(xb.files) and all(np.array_equal(xa[k], xb[k]) for k in xa.files)
        else:
            same = _same(torch.load(fa, map_location="cpu", weights_only=True),
                         torch.load(fb, map_location="cpu", weights_only=True))
        if not same:
            diffs.append(f"{rel}: differs")
        n += 1
    return n, diffs


def _same(x, y) -> bool:
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
    if isinstance(x, dict):  # a stored clock (a network's training seconds) is not content, nor a
        # hash of another file's bytes (a cache's teacher_sha256: runs before files.torch_save wrote
        # through a file object put a random folder name into every checkpoint's archive)
        return isinstance(y, dict) and x.keys() == y.keys() and all(
            _same(x[k], y[k]) for k in x if not TIMED.search(str(k)) and not str(k).endswith("sha256"))
    if isinstance(x, (list, tuple)):
        return type(x) is type(y) and len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y))
    if isinstance(x, float) and x != x:
        return isinstance(y, float) and y != y
    return x == y


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    a, b = (Path(p) for p in sys.argv[1:])
    for p in (a, b):
        if not (p / "results").is_dir():
            print(f"error: {p} has no results/ folder", file=sys.stderr)
            return 2
    nt, dt = tables(a, b)
    na, da = arrays(a, b)
    for line in dt + da:
        print(line)
    print(f"{nt} tables, {na} weight and sample files compared: {len(dt) + len(da)} differ")
    return 1 if dt or da else 0


if __name__ == "__main__":
    sys.exit(main())
