"""Small students from a teacher (O2MKD's and O2MKD x SFD's): the student's spec (the
teacher's with its own network settings), the check that channel selection can start it
from the teacher (same depth), and that selection. Torch is imported where the weights are."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from .router import Router


DEPTH_KEYS = ("channel_mult", "num_blocks")


def depth_mismatch(teacher_kwargs: dict, student_kwargs: dict) -> str | None:
    """Why channel selection cannot copy the teacher into a student with these backbone
    arguments (they change its depth), or None."""
    for k in DEPTH_KEYS:
        if k in student_kwargs and k in teacher_kwargs and student_kwargs[k] != teacher_kwargs[k]:
            return f"{k} {student_kwargs[k]} differs from the teacher's {teacher_kwargs[k]}"
    return None


def student_spec(teacher_spec: dict, student_kwargs: dict, init: str = "scratch") -> dict:
    """The teacher's spec with the backbone arguments `student_kwargs` changed (width,
    depth): everything else (image shape, attention, embeddings; ours or EDM's names)
    is the teacher's. Students made from the teacher keep its noise embedding's width."""
    spec = copy.deepcopy(teacher_spec)
    spec["net_kwargs"] = {**spec["net_kwargs"], **student_kwargs}
    if init == "teacher":
        if spec["net"] != "unet":
            raise UserError(f"init teacher (channel selection) is implemented for the unet backbone, not "
                            f"{spec['net']}: use --init scratch")
        why = depth_mismatch(teacher_spec["net_kwargs"], student_kwargs)
        if why:
            raise UserError(f"init teacher (channel selection) keeps the teacher's depth: the student's {why}; "
                            "change only the width (model_channels), or use --init scratch")
        spec["net_kwargs"]["noise_channels"] = teacher_spec["net_kwargs"].get("model_channels", 32)
    return spec


def students_from_teacher(router: "Router", teacher) -> None:
    """Every student starts as the teacher narrowed by channel selection (unet.select_channels:
    per channel space, the whole GroupNorm groups whose producing weights have the largest L2
    norm, in their original order). Norms rather than the first channels: a trained
    teacher's channels are not equally used, and the strongest carry most of its function."""
    from .unet import select_channels

    for s in router.students:
        select_channels(teacher.model, s.model, rule="norm")
