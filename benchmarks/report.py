"""Report, LaTeX export and toy heat maps: speed and page weight, side by side in one run.

    .venv/bin/python benchmarks/report.py [--quick]

Builds a synthetic run folder (no training: a store from arrays, a projection of n points
over L layers × E epochs, F figures) and prints:
  1. write_report vs the I/O floor (read + base64 every file it inlines, write one file) (goal < 1 s)
  2. the page: total size, and how much of it is the page's own script and style       (goal: <= 6 MB)
  3. hover thumbnails: one sprite sheet vs one PNG data URI per sample (time and bytes)
  4. projection coordinates: uint16 codes on each plot's box (base64) vs full-precision JSON (bytes)
  5. export_latex vs copying its files (the floor)                                       (goal <= 3x)
  6. toy heat maps: one batched forward with hooks vs a bare forward (floor, goal <= 3x) and vs a
     forward per grid point (the loop-per-sample way)
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import best


def make_run(root: Path, n: int, layers: int, epochs: int, figures: int) -> Path:
    """A pipeline-shaped run folder: config.yaml, model folder with metrics, store, results, figures."""
    import matplotlib.pyplot as plt
    import yaml

    from neuralatlas.analysis.projection import Projection
    from neuralatlas.data import digits
    from neuralatlas.plots.style import save_figure
    from neuralatlas.store import ActivationStore

    rng = np.random.default_rng(0)
    _, test = digits()
    n = min(n, len(test))
    model_dir = root / "mlp"
    names = [f"fc{i + 1}" for i in range(layers)]
    acts = {name: rng.normal(size=(n, 16)).astype(np.float32) for name in names}
    ActivationStore.from_arrays(model_dir / "acts.zarr", acts, labels=test.labels[:n], index=test.index[:n],
                                predictions=test.labels[:n], classes=test.classes,
                                epoch_activations={e: acts for e in range(epochs)})
    (root / "config.yaml").write_text(yaml.safe_dump({"name": "bench", "data": {"name": "digits"},
                                                      "models": [{"name": "mlp"}], "capture": {"split": "test"}}))
    metrics = [{"epoch": e, "loss": 1 / (e + 1), "train_accuracy": 1 - 0.5 / (e + 1),
                "test_accuracy": 1 - 0.6 / (e + 1)} for e in range(epochs)]
    (model_dir / "metrics.json").write_text(json.dumps({"epochs": metrics, "tries": 1}))
    coords = {(name, e): rng.normal(size=(n, 2)) * 30 for name in names for e in range(epochs)}
    quality = {k: {"neighborhood_hit": float(rng.random()), "trustworthiness": float(rng.random())} for k in coords}
    Projection(coords, rows=np.arange(n), index=test.index[:n], labels=test.labels[:n],
               predictions={e: test.labels[:n] for e in range(epochs)}, quality=quality,
               classes=test.classes, method="tsne").save(model_dir / "results" / "projection")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(*rng.normal(size=(2, 500)), s=4)
    for i in range(figures):
        save_figure(fig, model_dir / "figures" / "projection" / f"figure_{names[i % layers]}_{i}")
    plt.close(fig)
    return root


def bench_report(run: Path, repeat: int) -> dict:
    from importlib import resources

    from neuralatlas.report import write_report

    static = resources.files("neuralatlas.report").joinpath("static")
    script = b"".join(static.joinpath(n).read_bytes() for n in ("report.js", "report.css"))
    files = [p for p in run.rglob("*") if p.is_file() and p.suffix in (".png", ".svg", ".json", ".npz")
             and "acts.zarr" not in p.parts]

    def floor():  # read and encode what the page inlines, write one file of it
        parts = [base64.b64encode(p.read_bytes()) for p in files]
        parts.append(script)
        (run / "floor.bin").write_bytes(b"".join(parts))

    t_report = best(lambda: write_report(run, run / "report.html"), repeat)
    t_floor = best(floor, repeat)
    size = (run / "report.html").stat().st_size
    return {"report_s": t_report, "floor_s": t_floor, "size": size, "script": len(script)}


def bench_thumbnails(n: int, repeat: int) -> dict:
    from PIL import Image

    from neuralatlas.data import digits
    from neuralatlas.report.thumbnails import sprite

    _, test = digits()
    images = np.resize(test.inputs, (n, 1, 8, 8))

    def one_per_sample():
        out = []
        for img in images:
            buf = io.BytesIO()
            Image.fromarray(np.rint(img[0] * 255).astype(np.uint8)).save(buf, format="PNG")
            out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
        return out

    t_sprite = best(lambda: sprite(images), repeat)
    t_each = best(one_per_sample, repeat)
    return {"sprite_s": t_sprite, "each_s": t_each, "sprite_bytes": len(sprite(images)["uri"]),
            "each_bytes": sum(len(u) + 3 for u in one_per_sample())}


def bench_coordinates(n: int, keys: int) -> dict:
    from neuralatlas.report.projection import encode_xy

    rng = np.random.default_rng(0)
    xy = [rng.normal(size=(n, 2)) * 30 for _ in range(keys)]
    full = json.dumps([a.reshape(-1).tolist() for a in xy], separators=(",", ":"))
    short = json.dumps([encode_xy(a) for a in xy], separators=(",", ":"))
    return {"full": len(full), "encoded": len(short)}


def bench_latex(run: Path, repeat: int, tmp: Path) -> dict:
    from neuralatlas.report import export_latex

    pdfs = list((run / "mlp" / "figures").rglob("*.pdf"))

    def floor():
        dest = tmp / "copy"
        dest.mkdir(exist_ok=True)
        for i, p in enumerate(pdfs):
            shutil.copyfile(p, dest / f"{i}.pdf")

    t_export = best(lambda: export_latex(run, tmp / "latex"), repeat)
    return {"export_s": t_export, "floor_s": best(floor, repeat)}


def bench_toy(resolution: int, repeat: int) -> dict:
    import torch

    from neuralatlas.toy import evaluate_plane, hidden_layer_names, plane_grid
    from neuralatlas.zoo import mlp

    torch.set_num_threads(1)
    model = mlp(input_shape=(2,), n_classes=2, hidden=(32, 32), activation="tanh").eval()
    layers = hidden_layer_names(model)
    _, _, points = plane_grid(resolution)
    x = torch.from_numpy(points)

    def bare():
        with torch.no_grad():
            model(x)

    sub = points[:1000]

    def per_point():  # the loop-per-sample way, on 1,000 points, scaled to the grid
        for p in sub:
            evaluate_plane(model, layers, p[None], 1, batch_size=1)

    return {"batched_s": best(lambda: evaluate_plane(model, layers, points, resolution), repeat),
            "bare_s": best(bare, repeat),
            "per_point_s": best(per_point, 1) * len(points) / len(sub), "points": len(points)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke test)")
    args = parser.parse_args()
    n, layers, epochs, figures, repeat = (200, 3, 3, 4, 1) if args.quick else (450, 6, 11, 24, 3)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t = time.perf_counter()
        run = make_run(tmp / "run", n, layers, epochs, figures)
        print(f"synthetic run: {n} samples, {layers} layers x {epochs} epochs projected, {figures} figures"
              f" (PNG+PDF); built in {time.perf_counter() - t:.1f} s")

        r = bench_report(run, repeat)
        print(f"1. write_report       {r['report_s']:.3f} s   I/O floor {r['floor_s']:.3f} s"
              f"   ratio {r['report_s'] / r['floor_s']:.1f}x   (goal: well under 1 s; the rest is the data set"
              " reload for thumbnails, the store's attributes, templating)")
        own = r["size"] - r["script"]
        print(f"2. page               {r['size'] / 2**20:.2f} MiB, of which the page's script and style"
              f" {r['script'] / 2**20:.2f} MiB and the run {own / 2**20:.2f} MiB (goal <= 6 MB)")

        th = bench_thumbnails(n if args.quick else 2000, repeat)
        print(
            f"3. thumbnails         sprite {th['sprite_s'] * 1e3:.1f} ms, {th['sprite_bytes'] / 1024:.0f} KiB   one PNG"
            f" per sample {th['each_s'] * 1e3:.1f} ms, {th['each_bytes'] / 1024:.0f} KiB   ratio"
            f" {th['each_s'] / th['sprite_s']:.1f}x faster, {th['each_bytes'] / th['sprite_bytes']:.1f}x smaller"
        )

        c = bench_coordinates(n, layers * epochs)
        print(f"4. coordinates JSON   uint16-encoded {c['encoded'] / 1024:.0f} KiB   full precision"
              f" {c['full'] / 1024:.0f} KiB   ratio {c['full'] / c['encoded']:.1f}x smaller")

        lx = bench_latex(run, repeat, tmp)
        print(f"5. export_latex       {lx['export_s']:.3f} s   copy floor {lx['floor_s']:.3f} s   ratio"
              f" {lx['export_s'] / max(lx['floor_s'], 1e-9):.1f}x   (includes drawing the training-curve PDF)")

        ty = bench_toy(60 if args.quick else 200, repeat)
        print(
            f"6. toy heat maps      {ty['points']} grid points: evaluate_plane {ty['batched_s'] * 1e3:.1f} ms   bare"
            f" forward {ty['bare_s'] * 1e3:.1f} ms (floor)   ratio {ty['batched_s'] / ty['bare_s']:.1f}x (goal <= 3x);"
            f" a forward per point {ty['per_point_s']:.2f} s ({ty['per_point_s'] / ty['batched_s']:.0f}x slower)"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
