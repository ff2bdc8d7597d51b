"""Collect the benchmark reports into one folder with a README of their headlines.

    python -m benchmarks.summarize results/benchmark-runs/*.json --out results/benchmarks
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from .common import machine, run

from diffdistill.atomic import atomic_dir
from diffdistill.files import read_json


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    m = machine()
    lines = ["# Benchmarks", "", f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}"
             + (f", GPU {m['cuda']}" if m["cuda"] else "") + ". Each benchmark ran alone (every core reserved); "
             "ratios are measured within one run. Benchmarks measure, they never pass or fail.", "",
             "| benchmark | headline |", "|---|---|"]
    with atomic_dir(a.out) as out:
        for path in sorted(a.reports):
            r = read_json(path)
            lines.append(f"| [{r['title']}]({r['benchmark']}.md) | {r.get('headline', '')} |")
            for ext in (".json", ".md", ".png", ".pdf"):  # a figure where the benchmark drew one
                if ext in (".json", ".md") or Path(path).with_suffix(ext).exists():
                    shutil.copy(Path(path).with_suffix(ext), out / f"{r['benchmark']}{ext}")
        (out / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    run(main)
