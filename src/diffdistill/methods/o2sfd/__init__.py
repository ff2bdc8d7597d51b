"""O2MKD x SFD: few steps AND cheaper steps.

SFD cuts the number of steps; O2MKD cuts the cost of each step with small students that
each own a range of noise levels. Here a router of N small students (O2MKD's `Router`,
started from the teacher by channel selection) is fine-tuned with SFD's loss on the
cached teacher trajectories: the same caches, AFS and t_min as SFD. At NFE n with AFS
the network is called at n student timestamps; they are split into N contiguous groups
(as equal as np.array_split makes them) and each student owns its group's noise range,
the boundaries lying halfway in t^(1/rho) between neighbouring timestamps. With N = n
(the default) each student learns exactly one step.

`train.py` holds the loss and the update, `plan.py` the rows, the training rule and
the config checks."""
from .train import O2SFD  # noqa: F401  (registers the method)
