"""O2MKD: one-to-many knowledge distillation (Zhang & Ma 2024), and its one-to-one
baseline (N = 1). `train.py` holds the loss and the update, `plan.py` the rows, the
training rule and the config checks, `report.py` its tables and claims."""
from .train import O2MKD  # noqa: F401  (registers the method)
