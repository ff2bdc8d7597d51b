"""The feature classifier at other image sizes: test accuracy and training time of the
pipeline's classifier (diffdistill.metrics.featnet) on the digits at 8x8 (as shipped),
and resized to 16x16, 32x32 and 64x64 (bilinear, grey and as 3 equal RGB channels), with
the default's training settings (featnet: 600 iterations of 128). The depth follows the
size: one stride-2 convolution per halving down to 4x4. The digits upsampled carry no
more information than at 8x8, so equal accuracy says the deeper nets train as well;
the times say what a larger custom dataset's classifier costs.

    python -m benchmarks.featnet_sizes --out results/benchmark-runs
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from .common import run, write


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--iters", type=int, default=600)
    p.add_argument("--sizes", default="8,16,32,64")
    p.add_argument("--teacher", help="ignored (the benchmark rule passes it)")
    a = p.parse_args()
    from diffdistill.data import load_dataset
    from diffdistill.metrics.featnet import train_feature_net

    images, labels = load_dataset("digits")
    rows = []
    for res in (int(s) for s in a.sizes.split(",")):
        for channels in (1, 3):
            x = images if res == 8 else F.interpolate(images, size=(res, res), mode="bilinear", align_corners=False)
            x = x.expand(-1, channels, -1, -1).contiguous()
            model, info = train_feature_net(x, labels, iters=a.iters, batch_size=128, lr=0.002, seed=0,
                                            progress=False)
            rows.append({"size": f"{channels}x{res}x{res}", "parameters": sum(q.numel() for q in model.parameters()),
                         "stride-2 convs": sum(1 for m in model.body if isinstance(m, torch.nn.Conv2d)
                                               and m.stride == (2, 2)),
                         "test accuracy": info["test_accuracy"], "train s": info["train_seconds"]})
            print(rows[-1], file=sys.stderr, flush=True)
    base = rows[0]["train s"]
    for r in rows:
        r["time / 1x8x8"] = r["train s"] / base
    worst = min(r["test accuracy"] for r in rows)
    head = (f"test accuracy {rows[0]['test accuracy']:.3f} at 1x8x8, lowest {worst:.3f} over {len(rows)} sizes; "
            f"training {rows[-1]['train s'] / base:.1f}x the 8x8 time at {rows[-1]['size']}")
    write(a.out, "featnet_sizes", "The feature classifier at other image sizes",
          {"headline": head, "iters": a.iters}, rows,
          notes="Digits resized with bilinear interpolation; 20 % held out (the classifier's split); one run each, "
                f"{torch.get_num_threads()} torch threads.")


if __name__ == "__main__":
    run(main)
