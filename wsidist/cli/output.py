"""What the command line prints: consoles, errors, the per-slide progress bar and every table.

Imports of the library stay inside functions here and in every command module, so that
``wsidist --help`` starts without loading Dask, scikit-image or OpenSlide.

Results (tables, JSON) go to standard output; progress, notes and errors to standard error.
Values that come from users or files (slide names, error texts) are printed as text, never
interpreted as console markup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import pyarrow as pa

    from wsidist.io.slide import SlideInfo

console = Console(stderr=True)  # progress, errors, notes
out_console = Console()  # results: tables, JSON

Row = dict[str, Any]
Column = tuple[str, Callable[[Row], str]]  # header, cell text of a row


def fail(message: str) -> typer.Exit:
    """Print an error and return the exit (code 2) to raise."""
    console.print(Text.assemble(("error: ", "bold red"), message))
    return typer.Exit(2)


@contextlib.contextmanager
def slide_progress(title: str, total: int) -> Iterator[Callable[[Row], None]]:
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

        def on_result(row: Row) -> None:
            counts["skipped" if row.get("skipped") else row["status"]] += 1
            progress.update(bar, advance=1, **counts)

        yield on_result


def num(value: float | None, fmt: str, scale: float = 1.0) -> str:
    """``value * scale`` formatted, or ``-`` when missing."""
    return "-" if value is None else format(value * scale, fmt)


def status_text(row: Row) -> Text:
    if row.get("skipped"):
        return Text("skipped", style="dim")
    return Text(row["status"], style="green" if row["status"] == "ok" else "red")


def print_job_summary(
    title: str, table: pa.Table, this_run: set[str], columns: Sequence[Column], *, width: int = 0
) -> int:
    """One line per slide of this run, then each failed slide's reason; 1 if any failed, else 0.

    ``width``: at least this many characters, so the numbers are never squeezed.
    """
    rows = [r for r in table.to_pylist() if r["slide_id"] in this_run]
    summary = Table(title=title, box=box.SIMPLE_HEAD)
    longest = max((len(r["slide_id"]) for r in rows), default=8)
    summary.add_column("slide_id", overflow="fold", min_width=min(longest, 40))
    summary.add_column("status", no_wrap=True)
    for name, _ in columns:
        wraps = name == "note"  # free text: wraps; numbers never do
        summary.add_column(
            name, justify="left" if wraps else "right", no_wrap=not wraps, min_width=16 * wraps
        )
    for r in rows:
        summary.add_row(
            Text(r["slide_id"]), status_text(r), *(Text(cell(r)) for _, cell in columns)
        )
    target = Console(width=max(out_console.width, width)) if width else out_console
    target.print(summary)
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        console.print(Text.assemble((r["slide_id"], "red"), ": ", str(r.get("error") or "")))
    flagged = [r for r in rows if r["status"] == "ok" and r.get("qc_flags")]
    for r in flagged:
        flags = ", ".join(r["qc_flags"])
        console.print(
            Text.assemble((r["slide_id"], "yellow"), f" [{flags}]: ", str(r.get("warning") or ""))
        )
    if flagged:
        console.print(Text.assemble((f"{len(flagged)} slide(s) flagged", "bold yellow")))
    if failed:
        names = ", ".join(r["slide_id"] for r in failed)
        console.print(Text.assemble((f"{len(failed)} slide(s) failed: ", "bold red"), names))
    return 1 if failed else 0


STAGE1_COLUMNS: tuple[Column, ...] = (
    ("tiles", lambda r: num(r["n_tiles"], ".0f")),
    ("tissue tiles", lambda r: num(r["n_tissue_tiles"], ".0f")),
    ("tissue %", lambda r: num(r["tissue_frac"], ".1f", 100)),
    ("mpp", lambda r: num(r["mpp_x"] or None, ".3f")),
    ("s", lambda r: num(r["seconds"], ".1f")),
    ("note", lambda r: ", ".join(r.get("qc_flags") or []) or r["warning"] or ""),
)

REWRITE_COLUMNS: tuple[Column, ...] = (
    ("glass%", lambda r: num(r["glass_fraction"], ".1f", 100)),
    ("src MB", lambda r: num(r["source_bytes"], ".2f", 1e-6)),
    ("out MB", lambda r: num(r["output_bytes"], ".2f", 1e-6)),
    ("saved%", lambda r: num(r["reduction_pct"], ".1f")),
    ("PSNR", lambda r: num(r["psnr_db"], ".1f")),
    ("SSIM", lambda r: num(r["ssim"], ".3f")),
    ("s", lambda r: num(r["seconds"], ".1f")),
    ("MP/s/w", lambda r: num(r["mp_per_s_per_worker"], ".1f")),
)


def info_table(infos: Iterable[SlideInfo]) -> Table:
    """One row per slide, for ``wsidist info``."""
    table = Table(title="slides")
    table.add_column("slide", overflow="fold")
    for col in ("vendor", "backend", "size (w×h)", "levels", "mpp", "obj"):
        table.add_column(col, no_wrap=True)
    table.add_column("associated", overflow="fold")
    for info in infos:
        mpp = num(info.mpp_x, ".4g")
        if info.mpp_y is not None and info.mpp_y != info.mpp_x:
            mpp += f" × {num(info.mpp_y, '.4g')}"
        name = info.url.rstrip("/").rsplit("/", 1)[-1] or info.url
        cells = (
            name, info.vendor, info.backend, f"{info.width}×{info.height}", str(info.level_count),
            mpp, num(info.objective_power, "g"), ", ".join(info.associated_images) or "—",
        )  # fmt: skip
        table.add_row(*(Text(c) for c in cells))
    return table


def presets_table() -> Table:
    from wsidist.filters import DEFAULT_PRESET, PRESETS

    table = Table(title=f"tissue presets (default: {DEFAULT_PRESET})")
    table.add_column("preset")
    table.add_column("pipeline")
    for name, spec in PRESETS.items():
        table.add_row(name, Text(str(spec)))
    return table


def auto_explained() -> Text:
    """How the default preset works, one numbered step a paragraph."""
    from wsidist.filters.presets import AUTO_STEPS, DEFAULT_PRESET

    text = Text(f"How {DEFAULT_PRESET} works\n", style="bold")
    for i, step in enumerate(AUTO_STEPS, 1):
        text.append(f"{i}. {step}\n")
    return text


def filters_table() -> Table:
    """Every filter a spec can name: kind, what it takes and gives, parameters and defaults."""
    from wsidist.filters import FILTERS

    table = Table(title="filters (spec: `a & b | ~c`, `image_op > mask_op`, `mask |> refiner`)")
    for column in ("filter", "kind", "takes → gives", "parameters (size units: _px, _px0, _um)"):
        table.add_column(column)
    for name, info in sorted(FILTERS.items(), key=lambda item: (item[1].kind, item[0])):
        params = ", ".join(
            f"{p.name}" + ("" if p.required else f"={p.default!r}") for p in info.params.values()
        )
        doc = (info.func.__doc__ or "").strip().splitlines()
        table.add_row(
            name, info.kind, f"{info.takes} → {info.gives}", Text(params or (doc[0] if doc else ""))
        )
    return table
