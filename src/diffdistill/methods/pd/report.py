"""PD's claim (the claims table, `diffdistill.claims_table`): each halving round down to
4 steps keeps at least half of what DDIM loses halving the same teacher. Imported by
`Method.claims` only."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ... import stats
from ...claims import Claim, exact, rounds_keep_half
from ...records import Q, combination

if TYPE_CHECKING:
    from ...claims_table import Data

# -- the papers' effects on our scale ------------------------------------------------------
# A paper's effect is a fraction of a row it shares with ours (the teacher, a training-free
# sampler); the same fraction of our row is the effect on our scale. Only the papers'
# numbers enter the fractions.
PD_8, PD_4, DDIM_10 = 2.57, 3.00, 15.69  # PD's rounds 8 -> 4 and DDIM at 10 steps (DDIM at 4 is worse still)


def _carry_pd(d: "Data", values: dict | None) -> float:
    """The paper's round 8 -> 4 keeps (DDIM's loss / 2 - PD's loss) of DDIM's halving loss
    (at least 15.69 - 2.57; DDIM at 4 steps is worse than at 10): that fraction of our
    smallest DDIM halving loss among the claim's rounds (`values`: `_pd_rounds`')."""
    frac = ((DDIM_10 - PD_8) / 2 - (PD_4 - PD_8)) / (DDIM_10 - PD_8)
    losses = [r["ddim_loss"] for r in values["rounds"] if r["to"] >= 4] if values else []
    return frac * min(losses) if losses else float("nan")


def _pd_rounds(d: Data):
    """Each round: student minus its teacher, against half of what DDIM loses by halving
    the same teacher's steps (the DDIM rows on PD's grid, pd-teacher/nfe<n>)."""
    pd_rows, first = d.rows("pd"), d.rows("pd", "baseline")
    if not pd_rows or not first:
        return None
    chain = sorted(first.items(), reverse=True)[:1] + sorted(pd_rows.items(), reverse=True)
    rounds, parts, missing = [], [], []
    for (a, ra), (b, rb) in zip(chain, chain[1:]):
        if a != 2 * b:
            continue
        ddim = d.by_name.get(f"pd-teacher/nfe{b}")
        if ddim is None:
            missing.append(b)
            continue
        e = combination([(rb, 1.0), (ra, -0.5), (ddim, -0.5)])
        zero = {Q: 0.0, f"{Q}_sets": [0.0] * len(e[f"{Q}_sets"]),
                **({"fid_bias_draws": [0.0] * len(e["fid_bias_draws"])} if "fid_bias_draws" in e else {})}
        rounds.append({"from": a, "to": b, "e": stats.paired_rows(e, zero), "ddim_loss": ddim[Q] - ra[Q]})
        parts.append(f"{a}->{b}: {rb[Q] - ra[Q]:+.2f} vs DDIM's {ddim[Q] - ra[Q]:+.2f}")
    if not rounds:
        return None
    text = "student minus its teacher against DDIM halving the same teacher, FID inf: " + "; ".join(parts)
    if missing:
        text += f" (no DDIM row at {', '.join(map(str, missing))} steps: pd.first_teacher_steps)"
    return text, {"rounds": rounds}


CLAIMS = [
    Claim("PD halves the steps down to 4 with little loss", "PD 8/4 steps: 2.57/3.00 (+0.43) where DDIM at 4 steps "
          "is above its 15.69 at 10 steps (+13.1 or more); 2 and 1 steps, beyond the claim: 4.51, 9.12",
          "each round ending at 4 steps or more: student minus its teacher at most half of what DDIM loses halving "
          "the same teacher's steps (paired, one-sided, every round)", rounds_keep_half(4),
          {"rounds": [{"from": 8, "to": 4, "e": exact(PD_4 - PD_8 / 2 - DDIM_10 / 2)}]}, _pd_rounds, carry=_carry_pd,
          order=100),
]
