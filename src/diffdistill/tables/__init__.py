"""The result tables, from result records only (`diffdistill.records`), one module per
family: `main` (FID against NFE, every row against the reference, precision and recall,
efficiency, the DVC metrics), `ablation` (one factor at a time around the default),
`cost` (what each distilled model cost, and where the jobs' time went) and `format`
(csv, markdown with mean ± std cells, booktabs LaTeX). Lower FID is better."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Parts:
    """What the methods add to the tables and figures; the command line gathers it from
    their registry (`diffdistill.methods.report_parts`), so this module names no method."""
    labels: dict = field(default_factory=dict)    # family -> its name in titles
    colours: dict = field(default_factory=dict)   # family -> its colour in the figures
    compare: tuple = ()                           # (fast, slow): families compared at equal NFE (cost table)
    tables: tuple = ()                            # callables (records, profile, out_dir): a method's own tables
    ablation_tables: dict = field(default_factory=dict)  # table -> callable (records, out_dir) of the ablation target
