"""Attribution speed, measured side by side in one run.

On the digits CNN (1×8×8) and the VGG-style model (3×32×32 random inputs), batch 64:

- integrated gradients, 50 steps: neuralatlas (internal batch size chosen from measured cost
  and free memory, completeness error included) against captum with its default
  ``internal_batch_size`` (everything in one pass; goal: neuralatlas ≥ 1.5× faster), against
  captum tuned (its ``internal_batch_size`` swept like the floor, the best one kept), and against
  the floor, plain torch doing the same 50 forward+backward passes in the best chunk size
  found by a sweep (goal: neuralatlas ≤ 1.15× the floor);
- saliency: neuralatlas against one plain forward+backward (goal ≤ 1.1×), per call of a
  batch of 64, and over the whole digits test split in one call (the per-call fixed cost of
  any wrapper, ~0.1-0.2 ms of Python, weighs on a model whose forward+backward of 64 digits
  takes well under a millisecond).

Timings are the minimum over interleaved repeats (the machine may be shared); the median is
printed beside it. Run: ``.venv/bin/python benchmarks/attribution.py [--quick] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from timing import round_order

from neuralatlas.attribution import attribute
from neuralatlas.attribution.integrated import choose_internal_batch_size, gauss_legendre
from neuralatlas.data import digits
from neuralatlas.zoo import cnn, vgg

warnings.filterwarnings("ignore", category=UserWarning)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Run each function ``repeats`` times, interleaved, after one warm-up call each."""
    for f in fns.values():
        f()
    out: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in round_order(names, r):  # a new order each round
            f = fns[k]
            sync()
            t0 = time.perf_counter()
            f()
            sync()
            out[k].append(time.perf_counter() - t0)
    return out


def plain_ig(
    model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, n_steps: int, steps_per_pass: int
) -> torch.Tensor:
    """Integrated gradients in plain torch: Gauss-Legendre nodes, ``steps_per_pass`` per pass."""
    alphas, weights = gauss_legendre(n_steps)
    total = torch.zeros_like(x)
    for lo in range(0, n_steps, steps_per_pass):
        a = torch.as_tensor(alphas[lo:lo + steps_per_pass], dtype=x.dtype, device=x.device)
        w = torch.as_tensor(weights[lo:lo + steps_per_pass], dtype=x.dtype, device=x.device)
        k = len(a)
        xs = (a.view(k, 1, *[1] * (x.dim() - 1)) * x.unsqueeze(0)).reshape(k * len(x), *x.shape[1:])
        xs.requires_grad_(True)
        out = model(xs)
        (g,) = torch.autograd.grad(out.gather(1, t.repeat(k).view(-1, 1)).sum(), xs)
        total += (g.view(k, *x.shape) * w.view(k, 1, *[1] * (x.dim() - 1))).sum(0)
    return total * x


def plain_saliency(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    xi = x.detach().requires_grad_(True)
    out = model(xi)
    (g,) = torch.autograd.grad(out.gather(1, t.view(-1, 1)).sum(), xi)
    return g.abs()


def fmt(v: list[float]) -> str:
    return (
        f"{min(v) * 1e3:9.2f} ms (median {statistics.median(v) * 1e3:9.2f}, n={len(v)}, load {os.getloadavg()[0]:.1f})"
    )


def bench_model(name: str, model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, n_steps: int,
                repeats: int, whole: tuple[torch.Tensor, torch.Tensor] | None, device: str = "cpu") -> dict[str, float]:
    import captum.attr as ca

    model.to(device).eval()
    x, t = x.to(device), t.to(device)
    whole = None if whole is None else (whole[0].to(device), whole[1].to(device))
    for p in model.parameters():
        p.requires_grad_(False)
    n = len(x)
    print(f"\n== {name}: batch {n} of {tuple(x.shape[1:])}, {n_steps} steps, {device}"
          f"{'' if device != 'cpu' else f', {torch.get_num_threads()} threads'}")

    # the floor: plain torch at several chunk sizes, all timed in the repeats; the best one counts
    sweep = sorted({s for s in (1, 2, 5, 10, 25, n_steps) if s <= n_steps})

    t0 = time.perf_counter()
    per_call, ibs = choose_internal_batch_size(model, x, n_steps)
    probe_ms = (time.perf_counter() - t0) * 1e3
    print(f"   neuralatlas picks internal_batch_size={ibs} (rows per pass), {per_call} samples per call;"
          f" first-call probe {probe_ms:.1f} ms (cached after)")

    ig = ca.IntegratedGradients(model)
    tn = t.cpu().numpy()
    ours = lambda: attribute(model, x, "integrated_gradients", target=tn, n_steps=n_steps, keep_inputs=False,  # noqa: E731
                             device=device)
    ig_fns = {
        "neuralatlas IG": ours,
        "captum IG (default internal_batch_size)": lambda: ig.attribute(x, target=t, n_steps=n_steps),
        **{f"floor candidate: plain torch, {s * n} rows/pass": (lambda s=s: plain_ig(model, x, t, n_steps, s))
           for s in sweep},
        # captum tuned: its internal_batch_size swept like the floor (the default is all steps at once)
        **{f"tuned captum candidate: internal_batch_size={s * n}":
           (lambda s=s: ig.attribute(x, target=t, n_steps=n_steps, internal_batch_size=s * n))
           for s in sweep if s < n_steps},
    }
    # saliency is timed in a group of its own: right after an IG pass the caches are cold
    sal_fns = {
        "neuralatlas saliency": lambda: attribute(model, x, "saliency", target=tn, keep_inputs=False, device=device),
        "plain forward+backward": lambda: plain_saliency(model, x, t),
    }
    if whole is not None:
        wx, wt = whole
        wtn = wt.cpu().numpy()
        sal_fns[f"neuralatlas saliency, {len(wx)} samples in one call"] = (
            lambda: attribute(model, wx, "saliency", target=wtn, batch_size=64, keep_inputs=False, device=device))
        sal_fns[f"plain forward+backward, {len(wx)} samples in batches of 64"] = (
            lambda: [plain_saliency(model, wx[i:i + 64], wt[i:i + 64]) for i in range(0, len(wx), 64)])
    times = timed(ig_fns, repeats)
    # many rounds: a 1 ms call's minimum needs them on a shared machine (20 left it to chance)
    times.update(timed(sal_fns, max(repeats, 20 if repeats < 5 else 150)))
    for k, v in times.items():
        print(f"   {k:<58s} {fmt(v)}")

    floors = {k: min(v) for k, v in times.items() if k.startswith("floor candidate")}
    best_key = min(floors, key=floors.get)
    times["floor: best plain-torch candidate"] = times[best_key]
    print(f"   floor = {best_key.split(', ')[1]}")
    tuned = {k: min(v) for k, v in times.items() if k.startswith("tuned captum candidate")}
    tuned["captum IG (default internal_batch_size)"] = min(times["captum IG (default internal_batch_size)"])
    tuned_key = min(tuned, key=tuned.get)
    times["tuned captum: best internal_batch_size"] = times[tuned_key]
    print(f"   tuned captum = {tuned_key.split(': ')[-1]}")
    res = ours()
    ref = plain_ig(model, x, t, n_steps, sweep[-1])
    err = float(np.abs(res.maps - ref.cpu().numpy()).max())
    print(f"   check: max |neuralatlas - plain torch IG| = {err:.2e}; completeness error: median"
          f" {np.median(res.completeness):.2e}, max {np.max(res.completeness):.2e}")

    m = {k: min(v) for k, v in times.items()}
    ratios = {
        "captum default / neuralatlas IG (goal >= 1.5)": m["captum IG (default internal_batch_size)"]
        / m["neuralatlas IG"],
        "tuned captum / neuralatlas IG": m["tuned captum: best internal_batch_size"] / m["neuralatlas IG"],
        "neuralatlas IG / floor (goal <= 1.15)": m["neuralatlas IG"] / m["floor: best plain-torch candidate"],
        f"neuralatlas saliency / plain fwd+bwd, batch {n} (goal <= 1.1)": m["neuralatlas saliency"]
        / m["plain forward+backward"],
    }
    if whole is not None:
        k1, k2 = [k for k in times if k.endswith("in one call") or k.endswith("batches of 64")]
        ratios[f"neuralatlas saliency / plain fwd+bwd, {len(whole[0])} samples (goal <= 1.1)"] = m[k1] / m[k2]
    for k, v in ratios.items():
        print(f"-> {name.split(' (')[0]}: {k:<60s} {v:6.2f}  [load {os.getloadavg()[0]:.1f}]")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke version (seconds)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, every side (default 1)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: every contender runs there")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n_steps = 10 if args.quick else 50
    batch = 16 if args.quick else 64
    _, test = digits()
    x_digits = torch.from_numpy(test.inputs[:batch])
    t_digits = torch.from_numpy(test.labels[:batch])
    whole = (torch.from_numpy(test.inputs), torch.from_numpy(test.labels))
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} CPU thread(s) on every side;"
          f" load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    bench_model("digits CNN (neuralatlas.zoo.cnn)", cnn(seed=0), x_digits, t_digits, n_steps,
                args.repeats or (3 if args.quick else 15), None if args.quick else whole, args.device)
    widths = (8, 16) if args.quick else (32, 64, 128)
    bench_model(f"VGG-style (neuralatlas.zoo.vgg, widths {widths})", vgg(widths=widths, seed=0),
                torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,)), n_steps,
                args.repeats or (1 if args.quick else 3), None, args.device)


if __name__ == "__main__":
    main()
