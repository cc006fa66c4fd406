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
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
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
            console.print("[bold red]error:[/] " + _escape(cli_message(str(err))), highlight=False,
                          soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: run the same command again to resume.")
            raise typer.Exit(130) from None

    return wrapper


# Library messages speak Python (keyword arguments); on the command line the same advice is an option.
_CLI_WORDS = [
    ("pass overwrite=True", "pass --overwrite"),
    ("with overwrite=True", "with --overwrite"),
    ("overwrite=True", "--overwrite"),
    ("choose another out= path", "choose another folder"),
    ("with verify='deep'", "after `neuralatlas verify --deep --repair`"),
]


def cli_message(text: str) -> str:
    """A library error message with its Python advice put as command-line options."""
    for python, cli in _CLI_WORDS:
        text = text.replace(python, cli)
    return text


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


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


def _figures_as_before() -> Any:
    """The analysis commands write PNG and PDF, as they always have.

    ``neuralatlas run`` writes PNG only unless asked (``--pdf``).
    """
    from neuralatlas.steps import figure_formats

    return figure_formats(("png", "pdf"))


def _n_samples(value: str | None, old: int | None = None, *, old_flag: str = "--n") -> int | None:
    """``--n-samples`` (``all`` or omitted: every sample); the old flag still works, with a warning."""
    import warnings

    from neuralatlas.vocabulary import resolve_n_samples

    if old is not None:
        if value is not None:
            raise typer.BadParameter(f"give --n-samples only ({old_flag} is its old name)")
        warnings.warn(f"{old_flag} is deprecated since 0.2; use --n-samples (all: every sample)", DeprecationWarning,
                      stacklevel=2)
        console.print(f"[yellow]{old_flag} is deprecated: use --n-samples (all: every sample)[/]")
        return None if old == 0 else old
    return resolve_n_samples(value, name="--n-samples")


# ---------------------------------------------------------------------------- foundation
@app.command()
@friendly_errors
def layers(
    model: Annotated[str, typer.Argument(
        help="A built-in model (mlp, cnn, vgg, vgg16), 'package.module:function', a run folder or a Hugging Face model"
             " folder.")],
    input_shape: Annotated[str | None, typer.Option(
        help="Input shape of one sample, e.g. 1,8,8, or 16 (tokens) for a text model (default: the model's).")] = None,
    input_dtype: Annotated[str | None, typer.Option(
        help="dtype of the example input, e.g. long for token ids (default: long when the first layer is an "
             "embedding).")] = None,
) -> None:
    """List a model's layers with the names capture uses, their types and output shapes."""
    from neuralatlas.architecture import architecture as build_graph
    from neuralatlas.architecture import format_shape

    net, _ = _model_arg(model)
    graph = build_graph(net, input_shape=_parse_shape(input_shape) if input_shape else None,
                        input_dtype=input_dtype)
    table = Table(title=f"{model}: layers (input {format_shape(graph.input_shape)})")
    for col in ("name", "type", "output shape", "parameters"):
        table.add_column(col, justify="right" if col == "parameters" else "left")
    for row in graph.modules:
        table.add_row(row["name"], row["type"], format_shape(row["output_shape"]), f"{row['params']:,}")
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
    data: Annotated[
        str,
        typer.Option(
            help="Data set: digits, xor, circles, moons, spirals, mnist, fashion_mnist, cifar10, image_folder."
        ),
    ] = "digits",
    data_path: Annotated[Path | None, typer.Option(help="Folder or file of the data set, for data on disk.")] = None,
    epochs: int = 10,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    restarts: Annotated[int, typer.Option(help="Retrain from a new initialisation up to this many times...")] = 0,
    target_accuracy: Annotated[float | None, typer.Option(help="...while the final accuracy is below this.")] = None,
) -> None:
    """Train a model with a checkpoint and metrics for every epoch (epoch 0 = untrained)."""
    from neuralatlas.data import load
    from neuralatlas.zoo import build
    from neuralatlas.zoo import train as train_model

    train_set, test_set = load(data, path=data_path)
    if train_set is None:
        raise typer.BadParameter(f"--data {data} returned one data set; training needs (train, test) from the loader.")
    kwargs = {"input_shape": train_set.input_shape, "n_classes": train_set.n_classes} if ":" not in model else {}
    net = build(model, seed=seed, **kwargs)
    with progress_bar(f"training {model} on {data}", total=epochs) as update:
        result = train_model(net, train_set, test_set, epochs=epochs, run_dir=out, lr=lr,
                             batch_size=batch_size, seed=seed, restarts=restarts,
                             target_accuracy=target_accuracy, progress=lambda e, n, m: update(e, n))
    last = result.metrics[-1]
    tries = f" after {result.tries} tries" if result.tries > 1 else ""
    out_msg = (
        f"test accuracy {last.get('test_accuracy', float('nan')):.3f}{tries}; checkpoints in {out / 'checkpoints'}"
    )
    if target_accuracy is not None and not result.reached_target:
        out_msg += f" [yellow](target {target_accuracy} not reached)[/]"
    console.print(out_msg)


@app.command("capture")
@friendly_errors
def capture_cmd(
    run_dir: Annotated[Path, typer.Argument(
        help="A run folder made by `neuralatlas train` (model.json, checkpoints/).")],
    layers: Annotated[list[str] | None, typer.Option("--layer", "-l",
        help="Layer name or glob; repeat for more. Default: every leaf layer.")] = None,
    data: str = "digits",
    data_path: Path | None = None,
    split: Annotated[str, typer.Option(help="test or train")] = "test",
    gradients: Annotated[bool, typer.Option(help="Also capture gradients of the target.")] = True,
    target: Annotated[str, typer.Option(help="label, prediction, loss, or a class index.")] = "label",
    per_epoch: Annotated[bool, typer.Option(help="Capture every checkpoint epoch.")] = True,
    batch_size: int = 256,
    device: str | None = None,
    overwrite: bool = False,
    scheduler: Annotated[str | None, typer.Option(
        help="Address of a dask scheduler (tcp://host:8786): shard the capture across its workers. The run folder must"
             " be on storage they all see.")] = None,
) -> None:
    """Capture activations (and gradients) of a trained run into RUN_DIR/acts.zarr; resumes if interrupted."""
    from neuralatlas.capture import capture
    from neuralatlas.data import load
    from neuralatlas.zoo import list_checkpoints, load_run

    model, _ = load_run(run_dir)
    train_set, test_set = load(data, path=data_path)
    dataset = test_set if split == "test" else train_set
    if dataset is None:
        raise typer.BadParameter(f"--data {data} returned one data set (no train split); use --split test.")
    tgt: str | int = int(target) if target.lstrip("-").isdigit() else target
    checkpoints = run_dir if per_epoch and list_checkpoints(run_dir) else None
    with _dask_client(scheduler) as client, progress_bar(f"capturing {run_dir.name}") as update:
        store = capture(model, dataset, layers=layers, out=run_dir / "acts.zarr", gradients=gradients,
                        target=tgt, batch_size=batch_size, device=device, checkpoints=checkpoints,
                        overwrite=overwrite, progress=update, client=client)
    console.print(f"{store.n_samples} samples × {len(store.layers)} layers"
                  f"{f' × {len(store.epochs)} epochs' if store.epochs else ''} → {store.path}"
                  f" ({store.nbytes() / 2**20:.1f} MiB)")


@app.command("verify")
@friendly_errors
def verify_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder holding acts.zarr, or a store folder.")],
    deep: Annotated[bool, typer.Option(
        help="Read every written chunk through its checksum (slower); default: list the chunk files.")] = False,
    repair: Annotated[bool, typer.Option(
        help="Mark bad chunks unwritten and recompute them (a run folder made by `neuralatlas train`), with the "
             "capture's own settings.")] = False,
    data: Annotated[str, typer.Option(help="For --repair: the data set the store was captured from.")] = "digits",
    data_path: Path | None = None,
    split: Annotated[str, typer.Option(help="For --repair: test or train, as captured.")] = "test",
    batch_size: int = 256,
    device: str | None = None,
) -> None:
    """Check a store: every chunk its done flags call written is on disk (and, --deep, intact)."""
    from neuralatlas.store import ActivationStore

    path = run_dir / "acts.zarr" if (run_dir / "acts.zarr").is_dir() else run_dir
    store = ActivationStore.open(path, mode="a" if repair else "r", check=False)
    report = store.check_integrity(deep=deep)
    stdout.print(report.summary(), highlight=False)
    for problem in report.problems:
        stdout.print(f"  {_escape(problem.describe())}", highlight=False)
    if report.ok:
        return
    if not repair:
        raise NeuralAtlasError(f"{len(report.problems)} bad chunk(s) in {path}. Fix: `neuralatlas verify"
                               f" --repair{' --deep' if deep else ''} {run_dir}` recomputes exactly those rows.")
    marked = store.invalidate(report.problems)
    if path == run_dir or not (run_dir / "model.json").is_file():
        console.print(f"marked {marked} chunk(s) unwritten in {path}; run the capture that made it again"
                      " (same arguments) to recompute exactly those rows.")
        return
    from neuralatlas.capture import capture
    from neuralatlas.data import load
    from neuralatlas.zoo import load_run

    settings = store.attrs.get("capture", {})
    model, _ = load_run(run_dir)
    train_set, test_set = load(data, path=data_path)
    with progress_bar(f"recomputing {marked} chunk(s) of {run_dir.name}") as update:
        capture(model, test_set if split == "test" else train_set, layers=settings.get("layers"),
                out=path, gradients=bool(settings.get("gradients")), target=settings.get("target", "label"),
                reduce=settings.get("reduce"), output=settings.get("output"), batch_size=batch_size, device=device,
                checkpoints=run_dir if store.epochs else None, epochs=store.epochs or None,
                progress=update)
    ActivationStore.open(path, check=False).verify(deep=deep)
    console.print(f"repaired {marked} chunk(s) of {path}.")


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
        self.task: TaskID | None = None

    def step_started(self, step: str) -> None:
        self._close()
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task(step, total=None)

    def progress(self, done: int, total: int) -> None:
        if self.bar is not None and self.task is not None:
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
    only: Annotated[list[str] | None, typer.Option(
        help="Run only this step (train, capture, an analysis, report); repeatable.")] = None,
    force: Annotated[list[str] | None, typer.Option(help="Rerun this step even if cached; repeatable.")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Address of a dask scheduler: capture and analyses run on its workers.")] = None,
    pdf: Annotated[bool, typer.Option("--pdf",
        help="Also save every figure as PDF (default: PNG only, what the report shows; `neuralatlas export --latex` "
             "draws its PDFs from the results).")] = False,
) -> None:
    """Run a configuration: train or load → capture → analyses → report, redoing only what changed."""
    from neuralatlas.config import load_config
    from neuralatlas.pipeline import Pipeline

    cfg = load_config(config)
    if pdf:
        cfg.report.pdf = True
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
    if path.is_dir() and not (path / "model.json").is_file() and (path / "config.json").is_file():
        from neuralatlas.zoo.hf import hf_model  # a Hugging Face save_pretrained folder

        return hf_model(path), None
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
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            "-l",
            help="Layer whose channels to visualise (named as in `neuralatlas layers`); default: the class logits.",
        ),
    ] = None,
    units: Annotated[str | None, typer.Option(help="Channels or classes: 0,3,5 or 0-15 or all.")] = None,
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 256,
    param: Annotated[str, typer.Option(help="Image parameterisation: fourier or pixel.")] = "fourier",
    lr: Annotated[
        float | None, typer.Option(help="Adam's rate (default by image size: 0.2 under 16 px, else 0.05).")
    ] = None,
    seed: int = 0,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: CUDA when present).")] = None,
    filters: Annotated[bool, typer.Option(help="Also draw the kernels of --layer (or the first conv layer).")] = False,
    maps: Annotated[
        int | None, typer.Option(help="Also draw the feature maps of this sample (row of RUN_DIR/acts.zarr).")
    ] = None,
    maps_layer: Annotated[
        list[str] | None,
        typer.Option(help="Layers (names or globs) for --maps; default every [C, H, W] layer in the store."),
    ] = None,
    data: Annotated[
        str, typer.Option(help="Data set the store was captured from (to show the input beside the maps).")
    ] = "digits",
) -> None:
    """Optimise one image per unit of a layer (one batch), and optionally draw filters and feature maps."""
    from neuralatlas import steps as run_steps
    from neuralatlas.featurevis.taps import default_input_shape, layer_width
    from neuralatlas.zoo import load_run

    model, _ = load_run(run_dir)
    model.eval()
    chosen = _parse_units(units, layer_width(model, layer, default_input_shape(model)))
    name = "logits" if layer is None else layer
    dataset = None
    if maps is not None:
        from neuralatlas.data import load

        with contextlib.suppress(NeuralAtlasError):
            dataset = load(data)[1]
    with _figures_as_before(), progress_bar(f"optimising {len(chosen)} images of {name}", total=steps) as update:
        result = run_steps.featurevis.step(run_dir, model, layer=layer, units=chosen, steps=steps, param=param, lr=lr,
                                           seed=seed, device=device, filters=filters, maps=maps,
                                           maps_layers=maps_layer, data=dataset, progress=update)
    results_dir, figures_dir = run_dir / "results" / "featurevis", run_dir / "figures" / "featurevis"
    values = ", ".join(
        f"{label} {value:.3g}" for label, value in zip(result.labels[:8], result.values[:8], strict=True)
    )
    console.print(f"{len(chosen)} images of {name} in {result.settings['seconds']:.1f} s on"
                  f" {result.settings['device']} ({values}{' ...' if len(chosen) > 8 else ''});"
                  f" results in {results_dir}, figures in {figures_dir}")


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
    device: str | None = None,
    out: Annotated[Path | None, typer.Option(
        help="Where to write the dreamed image (default IMAGE_dream.png beside IMAGE).")] = None,
) -> None:
    """DeepDream: amplify what LAYER sees in IMAGE, over octaves, and write the result."""
    from neuralatlas.steps import dream as dream_step

    net, run_dir = _model_arg(model)
    total = octaves * steps
    with _figures_as_before(), progress_bar(f"dreaming {', '.join(layer)}", total=total) as update:
        result, target, figure_stem = dream_step.step(
            image, net, layer, run_dir=run_dir, out=out, octaves=octaves, octave_scale=octave_scale, steps=steps,
            step_size=step_size, seed=seed, device=device, progress=update)
    console.print(f"objective {result.trace[0].mean():.3g} → {result.trace[-1].mean():.3g} over"
                  f" {len(result.octave_sizes)} octave(s) {result.octave_sizes}; wrote {target}"
                  f" and {figure_stem}.png")


app.command("deepdream", hidden=True)(dream)


@app.command()
@friendly_errors
def architecture(
    model: Annotated[str, typer.Argument(
        help="A run folder, a built-in model (mlp, cnn, vgg, vgg16) or 'package.module:function'.")],
    input_shape: Annotated[str | None, typer.Option(
        help="Input shape of one sample, e.g. 3,32,32 (default: the model's).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Folder for graph.json, summary.csv/txt and the drawings (default: RUN_DIR/results/architecture, else "
             "./architecture/MODEL).")] = None,
    rankdir: Annotated[str, typer.Option(help="Graph direction: TB (top-bottom) or LR.")] = "TB",
    depth: Annotated[str | None, typer.Option(
        help="Merge modules nested deeper than this many name segments into one box (an int, or 'auto'); big models "
             "get 'auto' by default.")] = None,
    layout: Annotated[str, typer.Option(
        help="auto, tall (top to bottom) or wide (left to right, rows wrapping to the page width).")] = "auto",
    input_dtype: Annotated[str | None, typer.Option(
        help="dtype of the example input, e.g. long for token ids (default: long when the first layer is an "
             "embedding).")] = None,
) -> None:
    """Draw a model's graph with the layer names capture uses, and print its summary table.

    MODEL may also be a Hugging Face model folder (config.json + weights), loaded offline.
    """
    from neuralatlas import steps as run_steps
    from neuralatlas.architecture import dot_available

    net, run_dir = _model_arg(model)
    shape = _parse_shape(input_shape) if input_shape else None
    chosen_depth: int | str | None = int(depth) if depth and depth.isdigit() else depth
    target = out or (
        run_dir / "results" / "architecture" if run_dir else Path("architecture") / Path(model).name.replace(":", "_")
    )
    with _figures_as_before():
        graph = run_steps.architecture.step(run_dir or target, net, input_shape=shape, rankdir=rankdir,
                                            out=None if run_dir and out is None else target, depth=chosen_depth,
                                            layout=layout, input_dtype=input_dtype)
    view, _ = graph.view(chosen_depth, layout)
    text = graph.summary(repeats=True) if view is not graph else graph.summary()
    stdout.print(str(text), highlight=False, markup=False)
    note = (
        ""
        if dot_available()
        else " [yellow](Graphviz 'dot' not found: the SVG uses the built-in layout; apt-get install graphviz)[/]"
    )
    if graph.method == "hooks":
        note += f" [dim](traced by hooks: torch.fx could not trace it: {graph.fx_error})[/]"
    console.print(f"wrote the graph, summary and figures to {target}{note}")


# ---------------------------------------------------------------------------- report, LaTeX, toy networks
@app.command()
@friendly_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (from `neuralatlas run`, or one model's run folder).")],
    latex: Annotated[Path | None, typer.Option(
        help="Write booktabs tables, PDF figures and a main.tex into this folder.")] = None,
    html: Annotated[Path | None, typer.Option(
        help="Write the self-contained HTML report to this file (default: RUN_DIR/report.html when --latex is not "
             "given).")] = None,
    only: Annotated[str | None, typer.Option(
        help="LaTeX: export only these analyses, comma-separated (e.g. naps,projection).")] = None,
    images: Annotated[str, typer.Option(
        help="HTML: 'inline' (one self-contained file) or 'files' (figures in REPORT_files/ beside the page, a lighter"
             " page).")] = "inline",
) -> None:
    """Export a run: the one-file HTML report and/or a LaTeX folder (tables, figures, main.tex)."""
    from neuralatlas.report import export_latex, write_report

    if latex is None or html is not None:
        page = write_report(run_dir, html, images=images)
        stdout.print(f"[bold]report:[/] {page.resolve()}")
    if latex is not None:
        main = export_latex(run_dir, latex, only=only)
        stdout.print(f"[bold]LaTeX:[/] {main.resolve()}  (compile: cd {latex} && pdflatex {main.name})")


@app.command()
@friendly_errors
def toy(
    data: Annotated[str, typer.Option(help="Toy data set: xor, circles, moons or spirals.")] = "xor",
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/toy-DATA).")] = None,
    hidden: Annotated[str | None, typer.Option(help="Hidden widths, e.g. 8 or 32,32 (default: per data set).")] = None,
    activation: Annotated[str, typer.Option(help="Hidden nonlinearity: tanh, relu, sigmoid, ...")] = "tanh",
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: per data set).")] = None,
    restarts: Annotated[int, typer.Option(
        help="Retrain from a new initialisation up to this many times while below the target.")] = 5,
    target_accuracy: Annotated[float | None, typer.Option(
        help="Test accuracy that counts as learned (default: per data set).")] = None,
    seed: int = 0,
    resolution: Annotated[int, typer.Option(help="Grid points per axis of the heat maps.")] = 150,
) -> None:
    """Train a small MLP on a 2-D toy set; draw each hidden neuron's heat map and the decision regions."""
    from neuralatlas.toy import toy_network

    widths = tuple(int(w) for w in hidden.replace("x", ",").split(",") if w.strip()) if hidden else None
    run_dir = out or Path("runs") / f"toy-{data}"
    with progress_bar(f"training an MLP on {data}") as update:
        net = toy_network(data, hidden=widths, activation=activation, epochs=epochs, restarts=restarts,
                          target_accuracy=target_accuracy, seed=seed, resolution=resolution, run_dir=run_dir,
                          progress=lambda e, n, m: update(e, n))
    written = net.save_run(run_dir)
    colour = "red" if net.reached_target is False else "green"
    console.print(f"[{colour}]{net.status}[/]", highlight=False)
    console.print(f"{len(written)} files → {run_dir / 'figures' / 'toy'} (PNG + PDF), {run_dir / 'results' / 'toy'}")


# ---------------------------------------------------------------------------- NAPs and topomaps
# the run-folder helpers live with the steps; these names keep the commands short
from neuralatlas.steps import run_store as _run_store  # noqa: E402


@app.command("naps")
@friendly_errors
def naps_cmd(
    run_dir: Annotated[Path, typer.Argument(
        help="A run folder with acts.zarr (from `neuralatlas capture`, or an imported iNNtrospect folder).")],
    by: Annotated[str, typer.Option(
        help="Group samples by: label, prediction, correct, group, or another sample-table column.")] = "label",
    align: Annotated[str | None, typer.Option(
        help="'gradient': centre each sample on its largest gradient first (conv layers; needs gradients); 'auto' "
             "(default): do so when the store has the conv layers' gradients; 'none': never.")] = "auto",
    layers: Annotated[list[str] | None, typer.Option("--layer", "-l",
        help="Layer name or glob; repeat for more. Default: every layer.")] = None,
    epoch: Annotated[int | None, typer.Option(
        help="Checkpoint epoch of a per-epoch store (default: the final model).")] = None,
    figures: Annotated[bool, typer.Option(help="Also draw heatmaps, per-group maps and unit statistics.")] = True,
    memory_limit: Annotated[str | None, typer.Option(
        help="Memory for streaming the store, e.g. 2GB (default: a quarter of the free memory).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Address of a dask scheduler (tcp://host:8786): stream the store on its workers. The run folder must be "
             "on storage they all see.")] = None,
) -> None:
    """Neuron Activation Profiles: each unit's mean activation per group, plus unit statistics.

    Writes RUN_DIR/results/naps/ (values.npz, std.npz, statistics.npz, naps.json, summary.json)
    and RUN_DIR/figures/naps/.
    """
    from neuralatlas import steps as run_steps

    with _dask_client(scheduler) as client, _figures_as_before(), progress_bar(f"NAPs by {by}") as update:
        result = run_steps.naps.step(run_dir, by=by, layers=layers or None,
                                     align=None if align in ("none", "None") else align, epoch=epoch,
                                     figures=figures, memory_limit=memory_limit, client=client, progress=update)
    results_dir, figures_dir = run_dir / "results" / "naps", run_dir / "figures" / "naps"
    table = Table(title=f"NAPs by {result.by}: {len(result.groups)} groups, {int(result.counts.sum())} samples")
    for col in ("layer", "unit shape", "aligned", "dead", "always on", "sparsity"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for layer in result.layers:
        s = result.statistics(layer).summary()
        table.add_row(layer, str(result.unit_shape(layer)), "yes" if layer in result.aligned else "",
                      f"{s['dead_fraction']:.1%}", f"{s['always_on_fraction']:.1%}", f"{s['sparsity']:.1%}")
    stdout.print(table)
    console.print(f"results in {results_dir}, figures in {figures_dir}")


@app.command("topomap")
@friendly_errors
def topomap_cmd(
    run_dir: Annotated[Path, typer.Argument(
        help="A run folder with acts.zarr (NAPs are computed when results/naps/ is missing).")],
    layout: Annotated[str, typer.Option(help="umap, tsne, som, grid, or all (to compare their quality).")] = "umap",
    contrastive: Annotated[bool, typer.Option(
        help="Map contrastive NAPs (each group minus the average), as iNNtrospect does.")] = False,
    weight_by_size: Annotated[bool, typer.Option(
        help="Contrast against the size-weighted average of the groups.")] = False,
    zscore: Annotated[bool, typer.Option(help="Z-score contrastive NAPs across groups, per unit.")] = False,
    groups: Annotated[str | None, typer.Option(
        help="Comma-separated groups to contrast and map (default: all).")] = None,
    by: Annotated[str, typer.Option(help="Grouping, when NAPs must be computed (see `neuralatlas naps`).")] = "label",
    layers: Annotated[list[str] | None, typer.Option("--layer", "-l",
        help="Layer name or glob; repeat for more. Default: every layer.")] = None,
    seed: int = 0,
    resolution: Annotated[int, typer.Option(help="Pixels per side of each map.")] = 64,
    individual: Annotated[bool, typer.Option(
        help="Also write one PDF per layer and group (iNNtrospect's individual maps).")] = True,
) -> None:
    """Topographic activation maps: lay out each layer's units, draw every group's map over it.

    Writes RUN_DIR/results/topomap/<layout>/ (coordinates, images, quality JSON),
    RUN_DIR/results/topomap/quality.json, and RUN_DIR/figures/topomap/<layout>/.
    """
    from neuralatlas import steps as run_steps

    with _figures_as_before(), progress_bar(f"{layout} topomaps") as update:
        found = run_steps.topomap.step(
            run_dir, layout=layout, contrastive=contrastive, weight_by_size=weight_by_size, zscore=zscore,
            groups=[g.strip() for g in groups.split(",")] if groups else None, by=by, layers=layers or None,
            seed=seed, resolution=resolution, individual=individual, progress=update,
            message=lambda text: console.print(f"[yellow]{text}[/]"))
    all_quality = {method: maps.quality for method, maps in found.items()}
    results_root, figures_root = run_dir / "results" / "topomap", run_dir / "figures" / "topomap"
    table = Table(title=f"{'contrastive ' if contrastive else ''}topomaps: layout quality (random layout in brackets)")
    for col in ("layout", "layer", "units", "Spearman", "kNN kept", "trustworthiness", "map similarity"):
        table.add_column(col, justify="left" if col in ("layout", "layer") else "right")
    def pair(q: dict[str, Any], key: str) -> str:
        if key not in q:
            return "—"
        return f"{q[key]:.2f}" + (f" ({q['random_' + key]:.2f})" if "random_" + key in q else "")

    for method, per_layer in all_quality.items():
        for layer, q in per_layer.items():
            table.add_row(method if "layout" not in q else q["layout"], layer, f"{int(q['units'])}",
                          pair(q, "spearman"), pair(q, "knn"), pair(q, "trustworthiness"),
                          pair(q, "map_similarity"))
    stdout.print(table)
    console.print(f"results in {results_root}, figures in {figures_root}")


# ---------------------------------------------------------------------------- similarity
@app.command("similarity")
@friendly_errors
def similarity_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder with acts.zarr (from `neuralatlas capture`).")],
    other: Annotated[Path | None, typer.Option(
        help="A second run folder of the same samples (another model), compared layer by layer.")] = None,
    layers: Annotated[list[str] | None, typer.Option("--layer", "-l",
        help="Layer name or glob; repeat for more. Default: every layer.")] = None,
    epoch: Annotated[int | None, typer.Option(
        help="Checkpoint epoch of the layer×layer matrices and probes (default: the final model).")] = None,
    epochs: Annotated[str | None, typer.Option(
        help="Epochs of the epoch×epoch CKA of every layer: 'all' (default), 'none', or epochs like 0,4,8"
             " (per-epoch stores).")] = None,
    no_epochs: Annotated[bool, typer.Option("--no-epochs", hidden=True, help="Deprecated: --epochs none.")] = False,
    rbf: Annotated[bool, typer.Option(help="Also RBF CKA (on a subsample).")] = True,
    rsa: Annotated[bool, typer.Option(
        help="Also RSA: Spearman correlation of the layers' dissimilarity matrices.")] = True,
    probes: Annotated[bool, typer.Option(
        help="Also linear probes: cross-validated logistic-regression accuracy per layer.")] = True,
    pool: Annotated[str | None, typer.Option(
        help="'mean' or 'max': pool conv maps over space instead of flattening them.")] = None,
    n_samples: Annotated[str | None, typer.Option("--n-samples",
        help="Samples for RBF CKA, RSA, the probes and the Gram form of very wide layers (default: at most 2,000; all:"
             " every sample).")] = None,
    subsample: Annotated[int | None, typer.Option("--subsample", hidden=True, help="Deprecated: --n-samples.")] = None,
    memory_limit: Annotated[str | None, typer.Option(
        help="Memory for streaming, e.g. 2GB (default: a quarter of the free memory).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Address of a dask scheduler: stream the linear CKA passes on its workers (the run folder on shared "
             "storage).")] = None,
    seed: int = 0,
) -> None:
    """Representational similarity: layer×layer and epoch×epoch CKA, RSA, linear probes, model vs model.

    Writes RUN_DIR/results/similarity/ (matrices.npz, matrices.json, probes.json, summary.json)
    and RUN_DIR/figures/similarity/ (PNG + PDF).
    """
    from neuralatlas.steps import similarity as similarity_step

    store = _run_store(run_dir)
    with _dask_client(scheduler) as client, _figures_as_before() as formats, \
            progress_bar(f"similarity of {run_dir.name}") as update:
        # the sample count as the library takes it
        if subsample is not None and n_samples is not None:
            raise typer.BadParameter("give --n-samples only (--subsample is its old name)")
        count = ({"subsample": subsample} if subsample is not None  # the library maps the old cap and warns
                 else {} if n_samples is None else {"n_samples": _n_samples(n_samples)})
        result = similarity_step.step(run_dir, other=other, layers=layers or None, epoch=epoch,
                                      epochs=_similarity_epochs(epochs, no_epochs), **count,
                                      rbf=rbf, rsa=rsa, probes=probes, pool=pool,
                                      memory_limit=memory_limit, client=client, seed=seed, progress=update)
    results_dir, figures_dir = run_dir / "results" / "similarity", run_dir / "figures" / "similarity"
    written = [p for p in figures_dir.iterdir() if p.suffix.lstrip(".") in formats]
    lin = result.matrices["linear_cka"]
    table = Table(title=f"similarity of {run_dir.name}: {store.n_samples} samples")
    for col in ("layer", "CKA with next layer", "probe accuracy"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for i, layer in enumerate(lin.rows):
        nxt = f"{lin.values[i, i + 1]:.3f}" if i + 1 < len(lin.rows) else ""
        acc = f"{result.probes[layer]:.3f}" if result.probes is not None else ""
        table.add_row(layer, nxt, acc)
    stdout.print(table)
    for note in result.summary().get("notes", []):
        console.print(f"[yellow]note[/]: {note}", highlight=False)
    console.print(f"results in {results_dir}, {len(written)} figure files in {figures_dir}")


def _similarity_epochs(text: str | None, no_epochs: bool) -> Any:
    """``--epochs`` of ``similarity`` as the library's selection; the old ``--no-epochs`` warns."""
    if no_epochs:
        if text is not None:
            raise typer.BadParameter("give --epochs only (--no-epochs is the old --epochs none)")
        import warnings

        warnings.warn("--no-epochs is deprecated since 0.2; use --epochs none", DeprecationWarning, stacklevel=2)
        console.print("[yellow]--no-epochs is deprecated: use --epochs none[/]")
        return None
    if text is None or text.strip().lower() == "all":
        return "all"
    if text.strip().lower() == "none":
        return None
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(f"--epochs {text!r}: use 'all', 'none' or epochs like 0,4,8") from None


# ---------------------------------------------------------------------------- projections
def _parse_epochs(text: str | None) -> Any:
    if text is None or text == "last":
        return None
    if text == "all":
        return "all"
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(f"--epochs {text!r}: use 'all', 'last' or epochs like 0,4,8") from None


@app.command("project")
@friendly_errors
def project_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder with acts.zarr (per-epoch capture for --epochs).")],
    layers: Annotated[list[str] | None, typer.Option("--layer", "-l", "--layers",
        help="Layer name or glob, in the order to follow; repeat for more. Default: every layer.")] = None,
    epochs: Annotated[str | None, typer.Option(
        help="'all', 'last' (default: the final model) or epochs like 0,4,8; needs a per-epoch store.")] = None,
    method: Annotated[str, typer.Option(help="tsne, umap or pca.")] = "tsne",
    n_samples: Annotated[str | None, typer.Option("--n-samples",
        help="Samples in the subset, stratified by class (default: at most 2,000; all: every sample, streamed for "
             "--method pca).")] = None,
    n: Annotated[int | None, typer.Option("--n", hidden=True,
        help="Deprecated: --n-samples (0 was every sample).")] = None,
    seed: int = 0,
    align: Annotated[bool, typer.Option(
        help="Initialise each projection from the previous one and Procrustes-align it.")] = True,
    bundle: Annotated[bool, typer.Option(help="Kernel-density bundling of the trail images.")] = True,
    neurons: Annotated[list[str] | None, typer.Option("--neurons",
        help="Also map this layer's neurons and their discriminative power; repeat for more.")] = None,
    discriminative: Annotated[str, typer.Option(
        help="Importances for --neurons: trees, anova, or both (and their agreement).")] = "both",
    n_jobs: Annotated[int | None, typer.Option(
        help="Threads for t-SNE and the trees (-1: all cores; default: chosen by size).")] = None,
    memory_limit: Annotated[str | None, typer.Option(
        help="Memory for the streamed passes of --n 0, e.g. 2GB (default: a quarter of the free memory).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Address of a dask scheduler: the streamed passes of --n 0 run on its workers.")] = None,
) -> None:
    """Project hidden activity (Rauber et al. 2017): samples as points, layer by layer and epoch by epoch.

    Writes RUN_DIR/results/projection/ (coordinates.npz, projection.json, summary.json; neuron maps
    and importances for --neurons) and RUN_DIR/figures/projection/ (evolution over layers and
    epochs with trails, quality, neuron and discriminative maps; PNG and PDF).
    """
    from neuralatlas import steps as run_steps

    chosen = {} if n_samples is None and n is None else {"n_samples": _n_samples(n_samples, n)}
    with _dask_client(scheduler) as client, _figures_as_before(), progress_bar(f"{method} projections") as update:
        result = run_steps.projection.step(
            run_dir, layers=layers or None, epochs=_parse_epochs(epochs), method=method,
            **chosen, seed=seed, align=align, bundle=bundle, neurons=neurons,
            discriminative=discriminative, n_jobs=n_jobs, memory_limit=memory_limit, client=client,
            progress=update, message=console.print)
    results_dir, figures_dir = run_dir / "results" / "projection", run_dir / "figures" / "projection"
    table = Table(title=f"{method} projections of {result.n} samples (NH: neighbourhood hit k=6, T: trustworthiness)")
    for col in ("layer", "epoch", "NH", "T"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for row in result.quality_table().itertuples():
        epoch = "final" if row.epoch is None or row.epoch != row.epoch else str(int(row.epoch))
        table.add_row(row.layer, epoch, f"{row.neighborhood_hit:.3f}", f"{row.trustworthiness:.3f}")
    stdout.print(table)
    console.print(f"results in {results_dir}, figures in {figures_dir}")


# ---------------------------------------------------------------------------- attribution, adversarial
@app.command("attribute")
@friendly_errors
def attribute_cmd(
    run_dir: Annotated[Path, typer.Argument(
        help="A run folder made by `neuralatlas train` (model.json, checkpoints/).")],
    methods: Annotated[list[str] | None, typer.Option("--method", "-m",
        help="saliency, gradient_x_input, integrated_gradients (ig), smoothgrad, deeplift, gradient_shap, occlusion, "
             "guided_backprop, deconvolution, grad_cam, guided_grad_cam; repeat for more. Default: saliency, "
             "integrated_gradients, grad_cam.")] = None,
    n_samples: Annotated[str | None, typer.Option("--n-samples",
        help="Attribute only the first N samples of the split (default or all: every sample).")] = None,
    samples: Annotated[int | None, typer.Option("--samples", hidden=True, help="Deprecated: --n-samples.")] = None,
    data: str = "digits",
    data_path: Path | None = None,
    split: Annotated[str, typer.Option(help="test or train")] = "test",
    target: Annotated[str, typer.Option(help="label, prediction, or a class index.")] = "label",
    n_steps: Annotated[int, typer.Option(help="Integration steps of integrated gradients.")] = 50,
    sanity: Annotated[bool, typer.Option(
        help="Model-randomisation sanity checks (Adebayo et al. 2018) of every method.")] = True,
    faithfulness: Annotated[bool, typer.Option(help="Deletion and insertion curves of every method.")] = True,
    batch_size: int = 64,
    device: str | None = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an attributions.zarr made with other settings.")] = False,
) -> None:
    """Attribution maps of every sample into RUN_DIR/attributions.zarr (resumes if interrupted), with checks.

    Writes RUN_DIR/results/attribution/ (maps of the figure samples, faithfulness, sanity checks,
    summary.json) and RUN_DIR/figures/attribution/ (comparison grid, deletion/insertion curves,
    sanity-check curves and maps; PNG and PDF).
    """
    from neuralatlas.steps.attribution import attribute_run

    tgt: str | int = int(target) if target.lstrip("-").isdigit() else target
    chosen = methods or ["saliency", "integrated_gradients", "grad_cam"]
    count = _n_samples(n_samples, samples, old_flag="--samples")
    with _figures_as_before(), progress_bar(f"attributing {run_dir.name} ({', '.join(chosen)})") as update:
        summary = attribute_run(run_dir, chosen, data=data, data_path=data_path, split=split, n_samples=count,
                                target=tgt, n_steps=n_steps, sanity=sanity, faithfulness=faithfulness,
                                batch_size=batch_size, device=device, overwrite=overwrite, progress=update)
    table = Table(title=f"Attribution of {summary['n_samples']} samples ({split} split) → {summary['store']}")
    columns = ("completeness_max", "deletion_auc", "insertion_auc", "sanity_final_spearman", "sanity_passed")
    for col in ("method", *columns):
        table.add_column(col.replace("_", " "), justify="left" if col == "method" else "right")
    for name, entry in summary["methods"].items():
        cells = []
        for col in columns:
            value = entry.get(col)
            cells.append("-" if value is None else ("pass" if value is True else "FAIL" if value is False
                                                     else f"{value:.3g}"))
        table.add_row(name, *cells)
    stdout.print(table)
    console.print(f"results in {run_dir / 'results' / 'attribution'}, figures in {run_dir / 'figures' / 'attribution'}")


@app.command("attack")
@friendly_errors
def attack_cmd(
    run_dir: Annotated[
        Path, typer.Argument(help="A run folder made by `neuralatlas train` (model.json, checkpoints/).")
    ],
    method: Annotated[str, typer.Option(help="pgd or fgsm.")] = "pgd",
    eps: Annotated[
        list[float] | None,
        typer.Option(
            "--eps", help="Perturbation size (input units); repeat for a robustness curve. Default: 0.05, 0.1, 0.2."
        ),
    ] = None,
    norm: Annotated[str, typer.Option(help="linf or l2 (PGD).")] = "linf",
    steps: Annotated[int, typer.Option(help="PGD iterations.")] = 10,
    target_class: Annotated[
        int | None, typer.Option(help="Push every sample towards this class (targeted attack).")
    ] = None,
    n_samples: Annotated[
        str | None,
        typer.Option(
            "--n-samples", help="Attack only the first N samples of the split (default or all: every sample)."
        ),
    ] = None,
    samples: Annotated[int | None, typer.Option("--samples", hidden=True, help="Deprecated: --n-samples.")] = None,
    data: str = "digits",
    data_path: Path | None = None,
    split: Annotated[str, typer.Option(help="test or train")] = "test",
    capture: Annotated[
        bool,
        typer.Option(
            help="Capture clean and adversarial inputs (largest eps) into RUN_DIR/adversarial.zarr with a group column."
        ),
    ] = True,
    layers: Annotated[
        list[str] | None,
        typer.Option("--layer", "-l", help="Layers to capture (default: those of acts.zarr, else every leaf layer)."),
    ] = None,
    batch_size: int = 256,
    device: str | None = None,
    seed: int = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing adversarial.zarr.")] = False,
) -> None:
    """Adversarial examples (FGSM, PGD L∞/L2, targeted or not): success rate against eps, and where they land inside.

    Writes RUN_DIR/results/adversarial/ (robustness curve, attacked inputs, summary.json),
    RUN_DIR/figures/adversarial/ (robustness curve, clean/perturbation/adversarial grids) and,
    with --capture, RUN_DIR/adversarial.zarr for NAPs, projections and the report.
    """
    from neuralatlas.steps.adversarial import attack_run

    sizes = eps or [0.05, 0.1, 0.2]
    count = _n_samples(n_samples, samples, old_flag="--samples")
    with _figures_as_before(), progress_bar(f"{method} on {run_dir.name}") as update:
        summary = attack_run(run_dir, method, sizes, norm=norm, steps=steps, target_class=target_class, data=data,
                             data_path=data_path, split=split, n_samples=count, capture=capture, layers=layers,
                             batch_size=batch_size, device=device, seed=seed, overwrite=overwrite, progress=update)
    table = Table(title=f"{method.upper()} ({norm}) on {summary['n_samples']} samples")
    for col in ("eps", "accuracy", "success rate"):
        table.add_column(col, justify="right")
    for row in summary["curve"]:
        table.add_row(f"{row['eps']:g}", f"{row['accuracy']:.3f}", f"{row['success_rate']:.3f}")
    stdout.print(table)
    if "store" in summary:
        console.print(
            f"clean + adversarial (eps {summary['store']['eps']:g}) captured → {run_dir / summary['store']['path']}"
        )
    console.print(f"results in {run_dir / 'results' / 'adversarial'}, figures in {run_dir / 'figures' / 'adversarial'}")


if __name__ == "__main__":
    app()
