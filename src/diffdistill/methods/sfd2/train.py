"""SFD's second stage: the loss and the update (SFD's, on the stage-1 student's trajectories)."""
from __future__ import annotations

from dataclasses import replace

from ...errors import UserError
from ...provenance import read_meta
from ...options import settings_from
from .. import register
from ..sfd.train import SFD
from .plan import SFD2Plan


@register
class SFD2(SFD2Plan, SFD):
    teacher_afs = True

    def __init__(self, settings, device):
        if settings.teacher_nfe % 2 == 0:
            raise UserError(f"--teacher-nfe {settings.teacher_nfe} must be odd: its {settings.teacher_nfe + 2} timestamps "
                            "must contain the 1-NFE student's 3")
        # SFD's settings: the stage-1 student's sampler, and the 1-NFE student with AFS
        sfd = settings_from(settings, SFD.name, SFD.command_options())  # its own values, the rest None
        super().__init__(replace(sfd, nfe=1, afs=True, solver="euler", final_step="force", thresholding=False,
                                 K=(settings.teacher_nfe + 1) // 2), device)

    def meta(self, res) -> dict:
        stage1 = read_meta(self.settings.teacher)
        return {**super().meta(res), "stage": 2,
                "cumulative_wall_time": stage1.get("cumulative_wall_time", stage1["wall_time"]) + res.wall_time}
