"""The teacher: an EDM-preconditioned network trained with the EDM loss (Karras et al.
2022, section 5), or imported from an EDM snapshot (`diffdistill import-edm`). Its rows
are the training-free baselines: the teacher with each solver, and the high-NFE reference.

`train.py` holds the loss and the update, `plan.py` the rows, the training rule and
the config checks."""
from .train import Teacher  # noqa: F401  (registers the method)
