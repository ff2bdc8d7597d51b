"""The second stage's claim (the claims table, `diffdistill.claims_table`): a usable
1-NFE model. Imported by `Method.claims` only."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...claims import Claim, at_most, ratio_rows

if TYPE_CHECKING:
    from ...claims_table import Data


def _second_stage(d: Data):
    one_step = d.rows("sfd2").get(1)
    v = ratio_rows({2: one_step} if one_step else {}, d.rows("sfd"), [2])  # stage 2 at NFE 1 / SFD at NFE 2
    if v is None:
        return None
    return f"stage 2 at NFE 1 / SFD at NFE 2, FID inf: {v['ratio']:.2f} ± {v['se']:.2f}", v


CLAIMS = [
    Claim("The second stage gives a usable 1-NFE model", "SFD stage 2 NFE 1: 5.83 vs SFD NFE 2: 4.53 (x1.29)",
          "FID inf(stage 2, NFE 1) / FID inf(SFD, NFE 2) at most 1.5 (one-sided)", at_most(1.5),
          {"ratio": 5.83 / 4.53}, _second_stage, test_kind="ratio", ratio_bound=1.5, order=90),
]
