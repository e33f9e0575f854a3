"""`pgweave models list|pull`: the model catalog from the command line (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table

from . import catalog

models_app = typer.Typer(help="the models `pgweave serve` can serve: list them, pull one into the models folder",
                         no_args_is_help=True)
console = Console(soft_wrap=True)
HomeOption = Annotated[Optional[Path], typer.Option(
    "--home", help="models folder (default $PGWEAVE_MODELS, else ~/.cache/pgweave/models)")]


@models_app.command("list")
def list_models(home: HomeOption = None) -> None:
    """Every model the catalog knows, whether it is present, and where."""
    home = home or catalog.models_home()
    table = Table("name", "kind", "dims", "params", "download", "present")
    for entry in catalog.CATALOG.values():
        path = catalog.present_path(entry, home)
        size = f"{entry.download_size / 1e6:.0f} MB" if entry.parts else "installed"
        table.add_row(entry.name, entry.kind, str(entry.dimensions or "-"), entry.parameters, size,
                      str(path) if path else "no")
    console.print(table)
    console.print(f"pull one with: pgweave models pull NAME   (models folder: {home})")


@models_app.command("pull")
def pull(name: Annotated[str, typer.Argument(help="a catalog name, e.g. smollm2:135m")],
         home: HomeOption = None) -> None:
    """Make a catalog model present in the models folder (idempotent: a present model is left as it is)."""
    if catalog.find(name) is None:
        console.print(f"[red]error:[/] model \"{name}\" is not in the catalog; models that can be pulled: "
                      f"{', '.join(catalog.pullable())}")
        raise typer.Exit(2)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            tasks: dict[str, int] = {}
            for line in catalog.pull(name, home):
                status = line["status"]
                if "total" in line:
                    if status not in tasks:
                        tasks[status] = progress.add_task(status, total=line["total"])
                    progress.update(tasks[status], completed=line["completed"])
                else:
                    progress.console.print(status)
    except catalog.PullError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"[green]{catalog.find(name).name} is present in {home or catalog.models_home()}[/]")
