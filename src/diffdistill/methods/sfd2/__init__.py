"""SFD's second stage (1 NFE): a stage-1 SFD student teaches.

The teacher is the stage-1 student of `sfd2.teacher_nfe` NFE stepping with Euler and
AFS over its teacher_nfe + 2 timestamps; the student has 3 timestamps with AFS (1 NFE)
and starts from that stage-1 model. Its 3 timestamps are points 0, K and 2K of the
teacher's grid (K = (teacher_nfe + 1) / 2), so the stage-1 trajectories are cached at
them like the teacher's (`trajectories --teacher-afs true --solver euler --K K`) and
SFD's loss runs unchanged. The loss is L1 (or L2) only: the paper adds LPIPS, whose
weights cannot be had offline. Its fine-tuning time includes stage 1's.

`train.py` holds the loss and the update, `plan.py` the rows, the training rule and
the config checks."""
from .train import SFD2  # noqa: F401  (registers the method)
