"""SFD-v: one student for every NFE (SFD, section "SFD-v").

The student is the teacher plus a step-count embedding: the number of student
timestamps (4..7 for NFE 2..5 with AFS) goes through a sinusoidal positional
embedding and two linear layers, and the result is added to the backbone's noise
embedding, so it modulates every residual block (the backbones' `extra_emb`).

Initialisation: the second linear layer starts at zero (weights and bias), so the
added embedding is exactly 0 and the student equals the teacher at step 0; the first
layer is random, so the gradient reaching the zero layer is not zero and it learns
from the first optimizer step.

Training: every batch draws one timestamp count from the configured set and runs an
ordinary SFD batch on that NFE's cached teacher trajectories (the per-NFE SFD caches).
The checkpoint's recipe lists the NFE it serves; sampling tells the model its count.

`train.py` holds the loss and the update, `plan.py` the rows, the training rule and
the config checks."""
from .train import SFDV  # noqa: F401  (registers the method)
