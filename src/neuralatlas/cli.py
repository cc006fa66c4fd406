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
out = Console()


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
    out.print(table)


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"input shape {text!r} is not a list of integers like 1,8,8") from None
