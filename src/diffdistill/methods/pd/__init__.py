"""Progressive Distillation (Salimans & Ho, ICLR 2022). `train.py` holds the loss and the
update, `plan.py` the rounds, rows, the training rule and the config checks."""
from .train import ProgressiveDistillation  # noqa: F401  (registers the method)
