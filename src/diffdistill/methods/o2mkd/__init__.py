"""O2MKD: one-to-many knowledge distillation (Zhang & Ma 2024), and its one-to-one
baseline (N = 1).

N small students each own a contiguous range of noise levels; `Router` presents them
as one denoiser D(x; sigma) that sends every sample to the student owning its sigma, so
every solver runs on it unchanged. The paper's body is not public (its abstract is);
the range split, the student size and the KD losses are choices, see
`split_boundaries` and `O2MKD`.

`train.py` holds the loss and the update, `plan.py` the rows, the training rule and the
config checks, `report.py` its tables and claims."""
from .train import O2MKD  # noqa: F401  (registers the method)
