"""What the command line prints: consoles, errors, the per-slide progress bar and every table.

Imports of the library stay inside functions here and in every command module, so that
``wsidist --help`` starts without loading Dask, scikit-image or OpenSlide.

Results (tables, JSON) go to standard output; progress, notes and errors to standard error.
Values that come from users or files (slide names, error texts) are printed as text, never
interpreted as console markup.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
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


def note(message: str) -> None:
    """Print a note (to standard error), as text."""
    console.print(Text.assemble(("note: ", "bold"), message))


MIN_BLOCKS_SHOWN = 4  # a slide gets its own block bar from this many blocks


class SlideProgress:
    """The job's progress bar (ok / failed / skipped slides) and, for long slides, a bar of
    blocks per slide while it runs. Call it with each slide's row; ``blocks`` takes the
    workers' progress messages (``slide_id``, ``done``, ``total``), from any thread."""

    def __init__(self, progress: Progress, title: str, total: int):
        self._progress = progress
        self._counts = {"ok": 0, "failed": 0, "skipped": 0}
        self._bar = progress.add_task(f"[bold]{escape(title)}[/]", total=total, note=self._note())
        self._block_bars: dict[str, Any] = {}
        self._finished: set[str] = set()
        self._lock = threading.Lock()

    def _note(self) -> str:
        return "  ".join(f"{k} {v}" for k, v in self._counts.items())

    def __call__(self, row: Row) -> None:
        with self._lock:
            self._counts["skipped" if row.get("skipped") else row["status"]] += 1
            self._finished.add(row["slide_id"])
            bar = self._block_bars.pop(row["slide_id"], None)
            if bar is not None:
                self._progress.remove_task(bar)
            self._progress.update(self._bar, advance=1, note=self._note())

    def blocks(self, message: dict[str, Any]) -> None:
        slide_id, done, total = message["slide_id"], message["done"], message["total"]
        with self._lock:
            if total < MIN_BLOCKS_SHOWN or slide_id in self._finished:
                return
            bar = self._block_bars.get(slide_id)
            if bar is None:
                bar = self._progress.add_task(f"  {escape(slide_id)}", total=total, note="blocks")
                self._block_bars[slide_id] = bar
            self._progress.update(bar, completed=done, total=total)


@contextlib.contextmanager
def slide_progress(title: str, total: int) -> Iterator[SlideProgress]:
    """A progress bar of the job's slides; yields the per-row callback (see SlideProgress)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        yield SlideProgress(progress, title, total)


class Caught:
    """What :func:`reported` caught: the message of an expected error, or None."""

    message: str | None = None

    def exit_on_error(self) -> None:
        """Raise the exit (code 2) after printing the error, when one was caught."""
        if self.message is not None:
            gc.collect()  # free the failed call's frames (and Arrow tables) now, not at exit
            raise fail(self.message)


@contextlib.contextmanager
def reported(*types: type[BaseException]) -> Iterator[Caught]:
    """Catch expected errors (``WsidistError`` by default) inside; call ``exit_on_error()``
    after the block. A caught exception's traceback holds the failed call's frames in a
    reference cycle; left to the interpreter's shutdown, freeing the Arrow tables in them can
    abort the process ("terminate called without an active exception"), so they are
    collected before the exit."""
    from wsidist.errors import WsidistError

    caught = Caught()
    try:
        yield caught
    except tuple(types or (WsidistError,)) as exc:
        caught.message = str(exc)


@contextlib.contextmanager
def progress_bar(
    title: str, total: int, fields: Sequence[str], count: Callable[[Row, dict[str, int]], None]
) -> Iterator[Callable[[Row], None]]:
    """A bar over ``total`` slides showing ``fields`` counters; yields the per-row callback,
    where ``count(row, counters)`` adds the row's share."""
    counts = dict.fromkeys(fields, 0)
    text = "  ".join(f"{name} {{task.fields[{name}]}}" for name in fields)
    columns = (
        TextColumn(f"[bold]{title}[/]"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn(text),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("slides", total=total, **counts)

        def on_result(row: Row) -> None:
            count(row, counts)
            progress.update(bar, advance=1, **counts)

        yield on_result


def num(value: float | None, fmt: str, scale: float = 1.0) -> str:
    """``value * scale`` formatted, or ``-`` when missing."""
    return "-" if value is None else format(value * scale, fmt)


def status_text(row: Row) -> Text:
    if row.get("skipped"):
        return Text("skipped", style="dim")
    return Text(row["status"], style="green" if row["status"] == "ok" else "red")


def fitted_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str | Text]], width: int
) -> tuple[Table, list[str]]:
    """A table whose first column (a slide id or name) is never cut: when the rows do not fit
    in ``width`` columns whole, the table numbers them and the names are returned, one line
    each, to print under it. Other columns are right-aligned and never wrap."""
    for numbered, keep in [(False, len(headers))] + [(True, k) for k in range(len(headers), 1, -1)]:
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("#" if numbered else headers[0], no_wrap=True)
        for i, name in enumerate(headers[1:keep]):
            table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
        for i, row in enumerate(rows, 1):
            cells = [c if isinstance(c, Text) else Text(c) for c in row[:keep]]
            table.add_row(Text(str(i)) if numbered else cells[0], *cells[1:])
        if Console(width=10_000).measure(table).maximum <= width:
            break  # else number the rows, then drop columns from the right until it fits
    if keep < len(headers):
        table.caption = f"(too narrow for: {', '.join(headers[keep:])})"
    names = [f"{i:>3}  {Text(row[0]).plain}" for i, row in enumerate(rows, 1)] if numbered else []
    return table, names


def print_fitted(table: Table, names: Sequence[str]) -> None:
    """A :func:`fitted_table` and its names, on standard output."""
    out_console.print(table)
    for line in names:
        out_console.print(Text(line), soft_wrap=True)


def slide_table(
    title: str, rows: Sequence[Row], columns: Sequence[Column], width: int
) -> tuple[Table, list[str]]:
    """One line per slide (id, status, ``columns``); ids are never cut (see fitted_table)."""
    headers = ["slide_id", "status", *(name for name, _ in columns)]
    cells = [[r["slide_id"], status_text(r), *(cell(r) for _, cell in columns)] for r in rows]
    return fitted_table(title, headers, cells, width)


def print_left_out(failed: list[dict]) -> None:
    """The failed slides a selection left out, each with its error (nothing when none)."""
    print_lines(
        f"{len(failed)} failed slide(s) left out:",
        (Text.assemble((r["slide_id"], "red"), ": ", str(r.get("error") or "")) for r in failed),
        style="bold red",
    )


def print_lines(head: str, lines: Iterable[str | Text], style: str = "bold") -> None:
    """``head`` then each line indented, never hard-wrapped inside a name or path."""
    lines = list(lines)
    if not lines:
        return
    out_console.file.flush()  # results printed so far come first, also through a pipe
    console.print(Text(head, style=style))
    for line in lines:
        console.print(Text.assemble("  ", line), soft_wrap=True)


def print_closing(root: str, outputs: Sequence[str], next_steps: Sequence[str]) -> None:
    """Where a command's outputs are (``root``, one path a line) and what to run next."""
    print_lines(f"outputs in {root}:", outputs)
    print_lines("next:", next_steps)


def print_job_summary(
    title: str,
    table: pa.Table,
    this_run: set[str],
    columns: Sequence[Column],
    *,
    note: Callable[[Row], str | None] = lambda r: r.get("warning"),
) -> int:
    """One line per slide of this run (fitted to the terminal, ids whole), each slide's note
    (with its QC flags), then each failed slide with its reason; 1 if any failed, else 0."""
    rows = [r for r in table.to_pylist() if r["slide_id"] in this_run]
    print_fitted(*slide_table(title, rows, columns, out_console.width))
    print_reads(rows)
    notes = []
    for r in rows:
        flags = ", ".join(r.get("qc_flags") or [])
        text = " ".join(filter(None, [f"[{flags}]" if flags else "", note(r) or ""]))
        if r["status"] == "ok" and text:
            notes.append((r["slide_id"], text))
    n_flagged = sum(1 for r in rows if r["status"] == "ok" and r.get("qc_flags"))
    head = f"notes ({n_flagged} slide(s) flagged):" if n_flagged else "notes:"
    print_lines(head, (Text.assemble((sid, "yellow"), ": ", str(n)) for sid, n in notes))
    failed = [r for r in rows if r["status"] != "ok"]
    print_lines(
        f"{len(failed)} of {len(rows)} slide(s) failed:",
        (Text.assemble((r["slide_id"], "red"), ": ", str(r.get("error") or "")) for r in failed),
        style="bold red",
    )
    return 1 if failed else 0


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.1f} MB" if nbytes >= 1e6 else f"{nbytes / 1e3:,.1f} kB"


def print_reads(rows: Sequence[Row]) -> None:
    """The bytes and requests this run's slides moved from remote sources (when any)."""
    ran = [r for r in rows if not r.get("skipped")]
    nbytes = sum(int(r.get("bytes_read") or 0) for r in ran)
    requests = sum(int(r.get("read_requests") or 0) for r in ran)
    if nbytes or requests:
        out_console.print(
            f"read from remote slides: {_size(nbytes)} in {requests:,} requests "
            f"({len(ran)} slide(s); per slide: bytes_read, read_requests)",
            markup=False,
        )


STAGE1_COLUMNS: tuple[Column, ...] = (
    ("tiles", lambda r: num(r["n_tiles"], ".0f")),
    ("tissue tiles", lambda r: num(r["n_tissue_tiles"], ".0f")),
    ("tissue%", lambda r: num(r["tissue_frac"], ".1f", 100)),
    ("mpp", lambda r: num(r["mpp_x"] or None, ".3f")),
    ("s", lambda r: num(r["seconds"], ".1f")),
    ("flags", lambda r: ", ".join(r.get("qc_flags") or []) or "-"),
)

REWRITE_COLUMNS: tuple[Column, ...] = (
    ("glass%", lambda r: num(r["glass_fraction"], ".1f", 100)),
    ("src MB", lambda r: num(r["source_bytes"], ".2f", 1e-6)),
    ("out MB", lambda r: num(r["output_bytes"], ".2f", 1e-6)),
    ("saved%", lambda r: num(r["reduction_pct"], ".1f")),
    ("d", lambda r: num(r.get("distance"), ".2f")),
    ("PSNR", lambda r: num(r["psnr_db"], ".1f")),
    ("SSIM", lambda r: num(r["ssim"], ".3f")),
    ("s", lambda r: num(r["seconds"], ".1f")),
    ("MP/s/w", lambda r: num(r.get("mp_per_s_per_worker"), ".1f")),
)


def info_table(infos: Iterable[SlideInfo], width: int) -> tuple[Table, list[str]]:
    """One row per slide, for ``wsidist info`` (names whole, see fitted_table)."""
    headers = ["slide", "vendor", "backend", "size (w×h)", "levels", "mpp", "obj", "associated"]
    rows = []
    for info in infos:
        mpp = num(info.mpp_x, ".4g")
        if info.mpp_y is not None and info.mpp_y != info.mpp_x:
            mpp += f" × {num(info.mpp_y, '.4g')}"
        name = info.url.rstrip("/").rsplit("/", 1)[-1] or info.url
        rows.append([
            name, info.vendor, info.backend, f"{info.width}×{info.height}", str(info.level_count),
            mpp, num(info.objective_power, "g"), ", ".join(info.associated_images) or "—",
        ])  # fmt: skip
    return fitted_table("slides", headers, rows, width)


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

    table = Table(title="filters (spec: a & b | ~c,  image_op > mask_op,  mask |> refiner)")
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
