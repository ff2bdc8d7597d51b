"""What a training run shows while it trains: a progress bar, and live curves on rank 0.

Live curves: loss, learning rate and FID-curve points go to TensorBoard event files in
`results/runs/<the output's path>/` (`tensorboard --logdir results/runs`), on rank 0.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .files import write_text
from .resume_point import beside_results

EVENTS = ".diffdistill-events"  # in a TensorBoard folder: the event files runs of this output wrote there


def default_log_dir(out) -> Path:
    return beside_results(out, "runs", Path(out).parent / "runs")


def progress_bar(it, enabled, **kw):
    """`it` with a tqdm bar on stderr where `enabled` (rarely redrawn when not a terminal)."""
    if not enabled:
        return it
    from tqdm import tqdm
    return tqdm(it, dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 10, **kw)


class LiveCurves:
    """TensorBoard scalars of rank 0, written from the first point on (no file before);
    without the tensorboard package, nothing (one note). A fresh run replaces the event
    files earlier runs of the same folder wrote (listed in its EVENTS file; nobody
    else's), so a rerun's curves never lie over the old ones; a resumed run continues
    them (purge_step drops what the old files hold past the resume point)."""

    def __init__(self, log_dir, enabled: bool, purge_step: int):
        self.log_dir, self.enabled, self.purge_step, self.writer = log_dir, enabled and log_dir, purge_step, None

    def scalars(self, step: int, **values) -> None:
        if self.writer is None and self.enabled:
            self.enabled = False
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("live curves off: the tensorboard package is not installed", file=sys.stderr)
                return
            log_dir, listed = Path(self.log_dir), Path(self.log_dir) / EVENTS
            ours = listed.read_text().split() if listed.is_file() else []
            if not self.purge_step:
                for name in ours:
                    (log_dir / Path(name).name).unlink(missing_ok=True)
                ours = []
            before = set(log_dir.glob("events.out.tfevents.*")) if log_dir.is_dir() else set()
            self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=self.purge_step or None)
            new = sorted(p.name for p in set(log_dir.glob("events.out.tfevents.*")) - before)
            write_text(listed, "".join(f"{n}\n" for n in [*ours, *new]))
        if self.writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
