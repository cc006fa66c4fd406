"""The neuralatlas command line: parse, validate, call the library, show progress, save.

No business logic here: every command is a thin call into a library function that a
notebook can call too. Errors print as one red line with the fix and exit non-zero.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from neuralatlas.errors import NeuralAtlasError

app = typer.Typer(
    name="neuralatlas",
    help="What a neural network has learned inside: capture activations, then NAPs, topomaps,"
    " projections, attribution, feature visualisation, and one HTML report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
stdout = Console()


def friendly_errors(fn: Callable) -> Callable:
    """Print neuralatlas errors as one red line (no traceback) and exit with status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NeuralAtlasError as err:
            console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: run the same command again to resume.")
            raise typer.Exit(130) from None

    return wrapper


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar; yields ``update(done, total)`` for library progress callbacks."""
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False, disable=not sys.stderr.isatty() and False) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total_: int | None = None) -> None:
            bar.update(task, completed=done, total=total_ if total_ is not None else total)

        yield update


# ---------------------------------------------------------------------------- foundation
@app.command()
@friendly_errors
def layers(
    model: Annotated[str, typer.Argument(help="A built-in model (mlp, cnn, vgg, vgg16) or 'package.module:function'.")],
    input_shape: Annotated[Optional[str], typer.Option(help="Input shape of one sample, e.g. 1,8,8 (default: the model's).")] = None,
) -> None:
    """List a model's layers with the names capture uses, their types and output shapes."""
    from neuralatlas.zoo import build, layer_table

    net = build(model)
    shape = _parse_shape(input_shape) if input_shape else getattr(net, "_neuralatlas_spec", {}).get("input_shape")
    if shape is None:
        raise typer.BadParameter("this model does not say its input shape; pass --input-shape C,H,W")
    table = Table(title=f"{model}: layers (input {tuple(shape)})")
    for col in ("name", "type", "output shape", "parameters"):
        table.add_column(col, justify="right" if col == "parameters" else "left")
    for row in layer_table(net, tuple(shape)):
        table.add_row(row["name"], row["type"], str(tuple(row["output_shape"])) if row["output_shape"] else "-",
                      f"{row['n_params']:,}")
    stdout.print(table)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"input shape {text!r} is not a list of integers like 1,8,8") from None


@app.command()
@friendly_errors
def train(
    model: Annotated[str, typer.Argument(help="A built-in model (mlp, cnn, vgg) or 'package.module:function'.")],
    out: Annotated[Path, typer.Option(help="Run folder for checkpoints and metrics.")] = Path("runs/train"),
    data: Annotated[str, typer.Option(help="Data set: digits, xor, circles, moons, spirals, mnist, fashion_mnist, cifar10, image_folder.")] = "digits",
    data_path: Annotated[Optional[Path], typer.Option(help="Folder or file of the data set, for data on disk.")] = None,
    epochs: int = 10,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    restarts: Annotated[int, typer.Option(help="Retrain from a new initialisation up to this many times...")] = 0,
    target_accuracy: Annotated[Optional[float], typer.Option(help="...while the final accuracy is below this.")] = None,
) -> None:
    """Train a model with a checkpoint and metrics for every epoch (epoch 0 = untrained)."""
    from neuralatlas.data import load
    from neuralatlas.zoo import build
    from neuralatlas.zoo import train as train_model

    train_set, test_set = load(data, path=data_path)
    kwargs = {"input_shape": train_set.input_shape, "n_classes": train_set.n_classes} if ":" not in model else {}
    net = build(model, seed=seed, **kwargs)
    with progress_bar(f"training {model} on {data}", total=epochs) as update:
        result = train_model(net, train_set, test_set, epochs=epochs, run_dir=out, lr=lr,
                             batch_size=batch_size, seed=seed, restarts=restarts,
                             target_accuracy=target_accuracy, progress=lambda e, n, m: update(e, n))
    last = result.metrics[-1]
    tries = f" after {result.tries} tries" if result.tries > 1 else ""
    out_msg = f"test accuracy {last.get('test_accuracy', float('nan')):.3f}{tries}; checkpoints in {out / 'checkpoints'}"
    if target_accuracy is not None and not result.reached_target:
        out_msg += f" [yellow](target {target_accuracy} not reached)[/]"
    console.print(out_msg)


@app.command("capture")
@friendly_errors
def capture_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder made by `neuralatlas train` (model.json, checkpoints/).")],
    layers: Annotated[Optional[list[str]], typer.Option("--layer", "-l", help="Layer name or glob; repeat for more. Default: every leaf layer.")] = None,
    data: str = "digits",
    data_path: Optional[Path] = None,
    split: Annotated[str, typer.Option(help="test or train")] = "test",
    gradients: Annotated[bool, typer.Option(help="Also capture gradients of the target.")] = True,
    target: Annotated[str, typer.Option(help="label, prediction, loss, or a class index.")] = "label",
    per_epoch: Annotated[bool, typer.Option(help="Capture every checkpoint epoch.")] = True,
    batch_size: int = 256,
    device: Optional[str] = None,
    overwrite: bool = False,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of a dask scheduler (tcp://host:8786): shard the capture across its workers. The run folder must be on storage they all see.")] = None,
) -> None:
    """Capture activations (and gradients) of a trained run into RUN_DIR/acts.zarr; resumes if interrupted."""
    from neuralatlas.capture import capture
    from neuralatlas.data import load
    from neuralatlas.zoo import list_checkpoints, load_run

    model, _ = load_run(run_dir)
    train_set, test_set = load(data, path=data_path)
    dataset = test_set if split == "test" else train_set
    tgt: str | int = int(target) if target.lstrip("-").isdigit() else target
    checkpoints = run_dir if per_epoch and list_checkpoints(run_dir) else None
    with _dask_client(scheduler) as client, progress_bar(f"capturing {run_dir.name}") as update:
        store = capture(model, dataset, layers=layers, out=run_dir / "acts.zarr", gradients=gradients,
                        target=tgt, batch_size=batch_size, device=device, checkpoints=checkpoints,
                        overwrite=overwrite, progress=update, client=client)
    console.print(f"{store.n_samples} samples × {len(store.layers)} layers"
                  f"{f' × {len(store.epochs)} epochs' if store.epochs else ''} → {store.path}"
                  f" ({store.nbytes() / 2**20:.1f} MiB)")


@contextlib.contextmanager
def _dask_client(address: str | None) -> Iterator[Any]:
    """A dask.distributed Client for ``--scheduler ADDRESS`` (None: no cluster)."""
    if address is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise NeuralAtlasError("--scheduler needs dask.distributed: pip install 'neuralatlas[distributed]'.") from None
    try:
        client = Client(address, timeout="10s")
    except OSError as err:
        raise NeuralAtlasError(f"Cannot reach the dask scheduler at {address}: {err}. Start one with"
                               " `dask scheduler` and workers with `dask worker ADDRESS`.") from None
    with client:
        console.print(f"dask cluster at {address}: {len(client.scheduler_info()['workers'])} workers")
        yield client


class _RichReporter:
    """Draws a run's steps: one line per step, a progress bar while one runs."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.task = None

    def step_started(self, step: str) -> None:
        self._close()
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task(step, total=None)

    def progress(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)

    def message(self, text: str) -> None:
        console.print(text)

    def step_finished(self, record) -> None:
        self._close()
        mark = {"ran": "[green]✓[/]", "cached": "[dim]·[/]", "skipped": "[dim]-[/]"}[record.status]
        took = f" [dim]{record.seconds:.1f}s[/]" if record.status == "ran" else f" [dim]({record.status})[/]"
        console.print(f"{mark} {record.step}{took}")

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@app.command("run")
@friendly_errors
def run_cmd(
    config: Annotated[Path, typer.Argument(help="A run configuration (YAML); see examples/.")],
    only: Annotated[Optional[list[str]], typer.Option(help="Run only this step (train, capture, an analysis, report); repeatable.")] = None,
    force: Annotated[Optional[list[str]], typer.Option(help="Rerun this step even if cached; repeatable.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of a dask scheduler: capture and analyses run on its workers.")] = None,
) -> None:
    """Run a configuration: train or load → capture → analyses → report, redoing only what changed."""
    from neuralatlas.config import load_config
    from neuralatlas.pipeline import Pipeline

    cfg = load_config(config)
    with _dask_client(scheduler) as client:
        _run_pipeline(Pipeline(cfg, only=only, force=force or (), reporter=_RichReporter(), client=client))


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo run goes.")] = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(help="Training epochs of each model.")] = 10,
) -> None:
    """The built-in demo: an MLP and a CNN on digits, every analysis, one HTML report."""
    from neuralatlas.pipeline import Pipeline, demo_config

    _run_pipeline(Pipeline(demo_config(out, epochs=epochs), reporter=_RichReporter()))


def _run_pipeline(pipeline) -> None:
    import time

    start = time.perf_counter()
    result = pipeline.run()
    table = Table(title=f"neuralatlas run: {result.out}")
    for col in ("model", "test accuracy", "store", "layers × epochs"):
        table.add_column(col)
    for name, summary in result.summaries.items():
        tr, cap = summary.get("train") or {}, summary.get("capture") or {}
        acc = tr.get("test_accuracy")
        table.add_row(name, f"{acc:.3f}" if isinstance(acc, float) else "-",
                      f"{(cap.get('bytes') or 0) / 2**20:.1f} MiB" if cap else "-",
                      f"{len(cap.get('layers', []))} × {max(1, len(cap.get('epochs', [])))}" if cap else "-")
    stdout.print(table)
    for name in result.summaries:
        stdout.print(f"  {name}: run folder {result.out / name}  (store {result.out / name / 'acts.zarr'})")
    if result.report is not None:
        stdout.print(f"[bold]report:[/] {result.report.resolve()}")
    stdout.print(f"{len(result.ran)} steps ran, {len(result.cached)} cached, in {time.perf_counter() - start:.1f} s")


# ---------------------------------------------------------------------------- feature visualisation, architecture
def _model_arg(spec: str):
    """A run folder (model.json + checkpoints) → its trained model; else a built-in/import spec."""
    from neuralatlas.zoo import build, load_run

    path = Path(spec)
    if path.is_dir():
        return load_run(path)[0], path
    return build(spec), None


def _parse_units(text: str | None, width: int) -> list[int]:
    if text is None or text.strip().lower() == "all":
        return list(range(width))
    units: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            units += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise typer.BadParameter(f"units {text!r}: write e.g. 0,3,5 or 0-15 or all") from None
    return units


@app.command()
@friendly_errors
def featurevis(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (model.json, checkpoints/, optionally acts.zarr).")],
    layer: Annotated[Optional[str], typer.Option("--layer", "-l", help="Layer whose channels to visualise (named as in `neuralatlas layers`); default: the class logits.")] = None,
    units: Annotated[Optional[str], typer.Option(help="Channels or classes: 0,3,5 or 0-15 or all.")] = None,
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 256,
    param: Annotated[str, typer.Option(help="Image parameterisation: fourier or pixel.")] = "fourier",
    lr: float = 0.05,
    seed: int = 0,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1 (default: CUDA when present).")] = None,
    filters: Annotated[bool, typer.Option(help="Also draw the kernels of --layer (or the first conv layer).")] = False,
    maps: Annotated[Optional[int], typer.Option(help="Also draw the feature maps of this sample (row of RUN_DIR/acts.zarr).")] = None,
    data: Annotated[str, typer.Option(help="Data set the store was captured from (to show the input beside the maps).")] = "digits",
) -> None:
    """Optimise one image per unit of a layer (one batch), and optionally draw filters and feature maps."""
    from neuralatlas.featurevis import conv_layers, feature_maps, visualize_feature
    from neuralatlas.featurevis import filters as kernels
    from neuralatlas.featurevis import objectives as O
    from neuralatlas.featurevis.taps import default_input_shape, layer_width
    from neuralatlas.plots import feature_map_grid, filter_grid, objective_trace, optimized_images, save_figure
    from neuralatlas.zoo import load_run

    model, _ = load_run(run_dir)
    model.eval()
    shape = default_input_shape(model)
    chosen = _parse_units(units, layer_width(model, layer, shape))
    objective = O.class_logit(chosen) if layer is None else O.channel(layer, chosen)
    name = "logits" if layer is None else layer
    results_dir, figures_dir = run_dir / "results" / "featurevis", run_dir / "figures" / "featurevis"
    with progress_bar(f"optimising {len(chosen)} images of {name}", total=steps) as update:
        result = visualize_feature(model, objective, steps=steps, param=param, lr=lr, seed=seed,
                                   device=device, progress=update)
    result.save(results_dir, name)
    written = save_figure(optimized_images(result), figures_dir / f"{name}_images")
    written += save_figure(objective_trace(result), figures_dir / f"{name}_trace")
    if filters:
        f = kernels(model, layer if layer in conv_layers(model) else None)
        f.save(results_dir)
        written += save_figure(filter_grid(f), figures_dir / f"filters_{f.layer}")
    if maps is not None:
        from neuralatlas.data import load

        dataset = None
        with contextlib.suppress(NeuralAtlasError):
            dataset = load(data)[1]
        fm = feature_maps(run_dir, sample=maps, data=dataset)
        fm.save(results_dir, f"feature_maps_{maps}")
        for lyr in fm.layers:
            written += save_figure(feature_map_grid(fm, lyr), figures_dir / f"feature_maps_{maps}_{lyr}")
    values = ", ".join(f"{label} {value:.3g}" for label, value in zip(result.labels[:8], result.values[:8]))
    console.print(f"{len(chosen)} images of {name} in {result.settings['seconds']:.1f} s on"
                  f" {result.settings['device']} ({values}{' ...' if len(chosen) > 8 else ''});"
                  f" results in {results_dir}, {len(written)} figure files in {figures_dir}")


@app.command()
@friendly_errors
def dream(
    image: Annotated[Path, typer.Argument(help="An image file (PNG, JPEG, .npy) in the model's input range [0, 1].")],
    model: Annotated[str, typer.Option("--model", "-m", help="A run folder (trained model) or a built-in model name.")],
    layer: Annotated[list[str], typer.Option("--layer", "-l", help="Layer to amplify; repeat for several.")],
    octaves: int = 3,
    octave_scale: float = 1.4,
    steps: Annotated[int, typer.Option(help="Gradient steps per octave.")] = 20,
    step_size: float = 0.02,
    seed: int = 0,
    device: Optional[str] = None,
    out: Annotated[Optional[Path], typer.Option(help="Where to write the dreamed image (default IMAGE_dream.png beside IMAGE).")] = None,
) -> None:
    """DeepDream: amplify what LAYER sees in IMAGE, over octaves, and write the result."""
    from neuralatlas.featurevis import deepdream
    from neuralatlas.featurevis.images import read_image, write_image
    from neuralatlas.featurevis.taps import default_input_shape
    from neuralatlas.plots import dream_comparison, objective_trace, save_figure

    net, run_dir = _model_arg(model)
    net.eval()
    channels = default_input_shape(net)[0] if hasattr(net, "_neuralatlas_spec") else None
    picture = read_image(image, channels=channels)
    total = octaves * steps
    with progress_bar(f"dreaming {', '.join(layer)}", total=total) as update:
        result = deepdream(net, picture, layer, octaves=octaves, octave_scale=octave_scale, steps=steps,
                           step_size=step_size, seed=seed, device=device, progress=update)
    target = out or image.with_name(f"{image.stem}_dream.png")
    scale = max(1, 256 // max(picture.shape[1:]))
    write_image(target, result.image, scale=scale if target.suffix.lower() != ".npy" else 1)
    figure_stem = target.with_name(f"{target.stem}_comparison")
    if run_dir is not None:
        result.save(run_dir / "results" / "dream", image.stem)
        figure_stem = run_dir / "figures" / "dream" / image.stem
    save_figure(dream_comparison(result), figure_stem)
    save_figure(objective_trace(result), figure_stem.with_name(figure_stem.name + "_trace"))
    console.print(f"objective {result.trace[0].mean():.3g} → {result.trace[-1].mean():.3g} over"
                  f" {len(result.octave_sizes)} octave(s) {result.octave_sizes}; wrote {target}"
                  f" and {figure_stem}.png")


app.command("deepdream", hidden=True)(dream)


@app.command()
@friendly_errors
def architecture(
    model: Annotated[str, typer.Argument(help="A run folder, a built-in model (mlp, cnn, vgg, vgg16) or 'package.module:function'.")],
    input_shape: Annotated[Optional[str], typer.Option(help="Input shape of one sample, e.g. 3,32,32 (default: the model's).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for graph.json, summary.csv/txt and the drawings (default: RUN_DIR/results/architecture, else ./architecture/MODEL).")] = None,
    rankdir: Annotated[str, typer.Option(help="Graph direction: TB (top-bottom) or LR.")] = "TB",
) -> None:
    """Draw a model's graph with the layer names capture uses, and print its summary table."""
    from neuralatlas.architecture import architecture as build_graph
    from neuralatlas.architecture import dot_available
    from neuralatlas.plots import layer_costs, save_figure

    net, run_dir = _model_arg(model)
    shape = _parse_shape(input_shape) if input_shape else None
    graph = build_graph(net, input_shape=shape)
    target = out or (run_dir / "results" / "architecture" if run_dir else Path("architecture") / Path(model).name.replace(":", "_"))
    written = graph.save(target)
    if rankdir != "TB":
        written.append(graph.render(target / f"architecture_{rankdir}.svg", rankdir=rankdir))
    figures = run_dir / "figures" / "architecture" if run_dir else target
    written += save_figure(layer_costs(graph.summary()), figures / "layer_costs")
    if run_dir and dot_available():
        written.append(graph.to_png(figures / "architecture.png", rankdir=rankdir))
    stdout.print(str(graph.summary()), highlight=False, markup=False)
    note = "" if dot_available() else " [yellow](Graphviz 'dot' not found: the SVG uses the built-in layout; apt-get install graphviz)[/]"
    if graph.method == "hooks":
        note += f" [dim](traced by hooks: torch.fx could not trace it: {graph.fx_error})[/]"
    console.print(f"wrote {len(written)} files to {target}{note}")
