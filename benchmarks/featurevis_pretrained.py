"""Feature visualisation on EfficientNet-Lite0's real weights: batched vs sequential, and the floor.

1. 32 channels of one layer optimised as ONE batch (``channel(layer, range(32))``) vs 32
   single-image runs, same steps and settings; reports the time and each side's mean
   activation reached (so the speed-up is not bought with worse images).
2. One optimisation step of the batch (parameterisation, transforms, forward, backward,
   Adam) vs one bare forward+backward of the same batch through the model (the floor: what
   any activation maximisation must pay per step).

Run: .venv/bin/python benchmarks/featurevis_pretrained.py [--size 112] [--steps 16] [--layer blocks.8] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neuralatlas.featurevis import objectives as O
from neuralatlas.featurevis import visualize_feature
from neuralatlas.featurevis.taps import prepared
from neuralatlas.zoo import efficientnet_lite0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--layer", default="blocks.8")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 channels, 2 steps, 48 px")
    args = ap.parse_args()
    if args.quick:
        args.channels, args.steps, args.size = 4, 2, 48
    model = efficientnet_lite0()
    shape = (3, args.size, args.size)
    chans = list(range(args.channels))
    kw = {"input_shape": shape, "steps": args.steps, "device": args.device}

    t = time.perf_counter()
    batched = visualize_feature(model, O.channel(args.layer, chans), **kw)
    t_batch = time.perf_counter() - t
    t = time.perf_counter()
    seq_values = [float(visualize_feature(model, O.channel(args.layer, c), **kw).values[0]) for c in chans]
    t_seq = time.perf_counter() - t
    print(f"{args.channels} channels of {args.layer} at {args.size} px, {args.steps} steps ({args.device},"
          f" {torch.get_num_threads()} threads)")
    print(f"  batched    {t_batch:8.2f} s   mean activation {np.mean(batched.values):.3f}")
    print(f"  sequential {t_seq:8.2f} s   mean activation {np.mean(seq_values):.3f}   speed-up {t_seq / t_batch:.2f}x")

    # one step vs the floor, on the same batch
    one = visualize_feature(model, O.channel(args.layer, chans), **{**kw, "steps": 3})
    per_step = one.settings["seconds"] / 3
    x = torch.rand(args.channels, *shape, requires_grad=True)
    obj = O.channel(args.layer, chans)
    with prepared(model, obj.keys, args.device) as (taps, dev, _dtype):
        xd = x.detach().to(dev).requires_grad_(True)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            v = obj(taps.run(xd))
            (_g,) = torch.autograd.grad(v.sum(), xd)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    floor = min(times)
    print(f"  one optimisation step {per_step * 1000:8.1f} ms   forward+backward floor {floor * 1000:8.1f} ms"
          f"   overhead {per_step / floor:.2f}x")


if __name__ == "__main__":
    main()
