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
    with progress_bar(f"capturing {run_dir.name}") as update:
        store = capture(model, dataset, layers=layers, out=run_dir / "acts.zarr", gradients=gradients,
                        target=tgt, batch_size=batch_size, device=device, checkpoints=checkpoints,
                        overwrite=overwrite, progress=update)
    console.print(f"{store.n_samples} samples × {len(store.layers)} layers"
                  f"{f' × {len(store.epochs)} epochs' if store.epochs else ''} → {store.path}"
                  f" ({store.nbytes() / 2**20:.1f} MiB)")


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
) -> None:
    """Run a configuration: train or load → capture → analyses → report, redoing only what changed."""
    from neuralatlas.config import load_config
    from neuralatlas.pipeline import Pipeline

    cfg = load_config(config)
    _run_pipeline(Pipeline(cfg, only=only, force=force or (), reporter=_RichReporter()))


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
