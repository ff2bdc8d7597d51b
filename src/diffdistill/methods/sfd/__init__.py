"""SFD: Simple and Fast Distillation (Zhou et al., NeurIPS 2024). `train.py` holds the
loss and the update, `plan.py` the rows, the training rule and the config checks."""
from .train import SFD  # noqa: F401  (registers the method)
