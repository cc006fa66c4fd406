"""Feature visualisation: 64 channels of one conv layer as ONE batch vs 64 single-image runs.

Both sides run the same optimiser (Fourier images, default transforms, Adam, same steps) in
the same process, side by side; the batch does one forward/backward per step for all 64
channels, the loop one per channel. Besides the time, it reports the activation each unit
reached (the channel's mean activation on its final image, without transforms), so the
speed-up is not bought with worse images.

Cases:
  digits  the digits CNN with 32 then 64 channels, trained for a few epochs; layer conv2
          (8x8 grey inputs: per-step overhead dominates, as for any small model)
  rgb32   a VGG-style net on 3x32x32 inputs; layer block2.conv1 (64 channels; more
          arithmetic per image; the forward stops after block2.conv1)

Run: .venv/bin/python benchmarks/featurevis.py [--quick] [--device cuda] [--steps N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neuralatlas.featurevis import objectives as O
from neuralatlas.featurevis import visualize_feature


def _digits_model(epochs: int) -> torch.nn.Module:
    from neuralatlas.data import digits
    from neuralatlas.zoo import cnn, train

    train_set, test_set = digits()
    model = cnn((1, 8, 8), channels=(32, 64), seed=0)
    train(model, train_set, test_set, epochs=epochs, lr=3e-3, seed=0, device="cpu")
    return model.eval()


def _rgb_model() -> torch.nn.Module:
    from neuralatlas.zoo import vgg

    return vgg((3, 32, 32), widths=(32, 64, 128), seed=0).eval()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_case(name: str, model: torch.nn.Module, layer: str, units: int, steps: int, device: str,
             repeats: int) -> dict:
    kwargs = dict(steps=steps, seed=0, device=device)
    # Warm-up: allocator, kernels, lazy imports are paid before timing either side.
    visualize_feature(model, O.channel(layer, range(2)), **{**kwargs, "steps": 2})
    batch_times, seq_times = [], []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        batched = visualize_feature(model, O.channel(layer, range(units)), **kwargs)
        _sync(device)
        batch_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        singles = [visualize_feature(model, O.channel(layer, k), **kwargs) for k in range(units)]
        _sync(device)
        seq_times.append(time.perf_counter() - t0)
    b_vals = batched.values
    s_vals = np.array([r.values[0] for r in singles])
    tb, ts = min(batch_times), min(seq_times)
    return {"case": name, "layer": layer, "units": units, "steps": steps, "device": device,
            "batched_s": tb, "sequential_s": ts, "speedup": ts / tb,
            "batched_act": b_vals, "sequential_act": s_vals}


def report(r: dict) -> None:
    b, s = r["batched_act"], r["sequential_act"]
    ratio = b / np.where(np.abs(s) > 1e-9, s, np.nan)
    print(f"\n[{r['case']}] {r['units']} channels of {r['layer']}, {r['steps']} steps, device {r['device']}")
    print(f"  one batch of {r['units']:>3} images : {r['batched_s']:8.2f} s"
          f"  ({1e3 * r['batched_s'] / r['steps']:.1f} ms/step)")
    print(f"  {r['units']:>3} single-image runs : {r['sequential_s']:8.2f} s"
          f"  ({1e3 * r['sequential_s'] / (r['steps'] * r['units']):.1f} ms/step/run)")
    print(f"  speed-up (sequential / batched): {r['speedup']:.1f}x   (goal >= 5x)")
    print("  activation reached per unit (channel mean on its final image):")
    print(f"    batched    : mean {b.mean():.3f}  median {np.median(b):.3f}  min {b.min():.3f}  max {b.max():.3f}")
    print(f"    sequential : mean {s.mean():.3f}  median {np.median(s):.3f}  min {s.min():.3f}  max {s.max():.3f}")
    print(f"    batched / sequential per unit: median {np.nanmedian(ratio):.3f};"
          f" units within 10% of the loop or better: {int(np.sum(b >= s - 0.1 * np.abs(s)))}/{len(b)};"
          f" correlation across units {np.corrcoef(b, s)[0, 1]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke version (16 units, 16 steps)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when present)")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps (default 128; quick 16)")
    parser.add_argument("--cases", default="digits,rgb32", help="comma-separated: digits, rgb32")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    units = 16 if args.quick else 64
    steps = args.steps or (16 if args.quick else 128)
    repeats = 1 if args.quick else 2
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else
             f", {torch.get_num_threads()} CPU threads"))
    results = []
    if "digits" in cases:
        model = _digits_model(epochs=2 if args.quick else 6)
        results.append(run_case("digits", model, "conv2", units, steps, device, repeats))
        report(results[-1])
    if "rgb32" in cases:
        rgb_units = units
        rgb_steps = max(8, steps // 2) if device == "cpu" else steps
        results.append(run_case("rgb32", _rgb_model(), "block2.conv1", rgb_units, rgb_steps, device, 1))
        report(results[-1])
    print("\nsummary: " + "; ".join(f"{r['case']} {r['speedup']:.1f}x" for r in results))


if __name__ == "__main__":
    main()
