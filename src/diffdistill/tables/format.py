"""How a table is written: <name>.csv (numbers), <name>.md (mean ± std in one cell) and
<name>.tex (booktabs), and the long form and JSON numbers DVC reads."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd


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


def finite(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
