"""SFD-v's claim (the claims table, `diffdistill.claims_table`): about as good as the
per-NFE SFD students. Imported by `Method.claims` only."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...claims import Claim, each_at_most, ratio_rows

if TYPE_CHECKING:
    from ...claims_table import Data


def _sfdv(d: Data):
    sfd, sfdv = d.rows("sfd"), d.rows("sfdv")
    nfes = sorted(set(sfd) & set(sfdv))
    v = ratio_rows(sfdv, sfd, nfes)
    if v is None:
        return None
    per = ", ".join(f"NFE {n}: {r:.2f} ± {se:.2f}" for n, (r, se) in zip(nfes, v["per"]))
    return f"SFD-v / SFD, FID inf, per NFE: {per}", v


CLAIMS = [
    Claim("SFD-v is about as good as the per-NFE SFD students", "SFD-v 2/3/4/5: 4.28/3.50/3.18/2.95 vs SFD "
          "4.53/3.58/3.24/3.06 (ratios 0.94-0.98)", "FID inf(SFD-v) / FID inf(SFD) at every NFE at most 1.10 "
          "(one-sided, each NFE)", each_at_most(1.10),
          {"per": [(4.28 / 4.53, 0.0), (3.50 / 3.58, 0.0), (3.18 / 3.24, 0.0), (2.95 / 3.06, 0.0)]}, _sfdv,
          test_kind="ratio", ratio_bound=1.10, order=80),
]
