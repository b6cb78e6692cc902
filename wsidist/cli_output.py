"""What the command line prints: consoles, errors and the per-slide job progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)  # progress, errors, notes
out_console = Console()  # results: tables, JSON


def fail(message: str) -> typer.Exit:
    """Print an error and return the exit (code 2) to raise."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


@contextlib.contextmanager
def slide_progress(title: str, total: int) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A progress bar counting ok / failed / skipped slides; yields the per-row callback."""
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    columns = (
        TextColumn(f"[bold]{title}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "ok {task.fields[ok]}  failed {task.fields[failed]}  skipped {task.fields[skipped]}"
        ),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("slides", total=total, **counts)

        def on_result(row: dict[str, Any]) -> None:
            counts["skipped" if row.get("skipped") else row["status"]] += 1
            progress.update(bar, advance=1, **counts)

        yield on_result
