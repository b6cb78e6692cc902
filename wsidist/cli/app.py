"""The ``wsidist`` typer app: one command per stage, registered from the stage modules."""

from __future__ import annotations

import atexit
import gc
from typing import Annotated

import click
import typer
from typer.core import TyperCommand

from wsidist.cli.evaluate import mask_from_tiles_cmd, metrics_cmd
from wsidist.cli.infer import infer_cmd, stain_fit_cmd
from wsidist.cli.info import info
from wsidist.cli.query import compact_cmd, extract_cmd, select_tiles, top_tiles_cmd
from wsidist.cli.rails import rails_fit_cmd
from wsidist.cli.report import report_cmd, stats_cmd, view_cmd
from wsidist.cli.stage1 import demo, filters, score
from wsidist.cli.stage2 import export_cmd, restore_cmd, rewrite_cmd

HELP = """Distributed whole-slide-image preprocessing on Dask.

score (stage 1) turns slides into tissue masks and scored tile tables in Parquet; select
and extract re-select tiles and write patches without reading the slides' pixels again;
rewrite (stage 2) writes glass-removed JPEG-XL pyramids; infer runs models over patches;
report and view show the results. Every command runs on a local cluster of worker
processes, or on a Dask scheduler given with --scheduler.

\b
First run:  wsidist demo --out demo-out
Then:       wsidist select demo-out --top 20
Look:       wsidist report demo-out
Help:       wsidist COMMAND --help
"""

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=HELP,
    rich_markup_mode=None,  # plain help text: no type labels, readable at 80 columns
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"wsidist {version('wsidist')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", help="print the version and exit", callback=_version, is_eager=True
        ),
    ] = None,  # fmt: skip
) -> None:
    """The wsidist command line."""
    # at exit, collect what cycles still hold (DuckDB results, Arrow readers) while their
    # libraries are alive: a native worker thread torn down only at interpreter finalization
    # can abort a finished run (SIGABRT, "terminate called without an active exception")
    atexit.unregister(gc.collect)
    atexit.register(gc.collect)


class Command(TyperCommand):
    """A command whose arguments show by name only: no type labels, no braces."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or (param.name or "").upper()
                name = name if param.required else f"[{name}]"
                pieces.append(name + ("..." if param.nargs != 1 else ""))
        return pieces

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                help_text = (param.help or "") + ("  [required]" if param.required else "")
                args.append((param.metavar or (param.name or "").upper(), help_text))
            else:
                opts.append(record)
        for title, records in (("Arguments", args), ("Options", opts)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


COMMANDS = (  # name, function, one line for `wsidist --help`
    ("demo", demo, "Synthetic slides, then stage 1 on them: start here."),
    ("info", info, "Each slide's vendor, levels, mpp, objective, associated images."),
    ("score", score, "Stage 1: tissue masks and scored tiles (Parquet) per slide."),
    ("filters", filters, "The tissue presets and the filters a spec can use."),
    ("select", select_tiles, "Select tiles with SQL (DuckDB), without reading pixels."),
    ("compact", compact_cmd, "Rewrite the tile partitions into a few bucket files."),
    ("extract", extract_cmd, "Write the selected patches (files, tar shards, mosaics)."),
    ("top-tiles", top_tiles_cmd, "The best tiles straight from one slide, in memory."),
    ("mask-from-tiles", mask_from_tiles_cmd, "Selected tiles as one mask per slide."),
    ("metrics", metrics_cmd, "Dice, Jaccard, precision, recall of masks against truth."),
    ("rewrite", rewrite_cmd, "Stage 2: glass-removed JPEG-XL (or JPEG) pyramids."),
    ("export", export_cmd, "A pyramid as a JPEG TIFF that OpenSlide-based viewers open."),
    ("restore", restore_cmd, "A --transcode pyramid back to its source's JPEG tiles."),
    ("infer", infer_cmd, "A model over overlapping patches: heat maps with uncertainty."),
    ("stain-fit", stain_fit_cmd, "Fit a stain normaliser on a reference slide."),
    ("report", report_cmd, "A static HTML report of an output: slides, charts, pages."),
    ("stats", stats_cmd, "Slide facts and dataset charts without running stage 1."),
    ("view", view_cmd, "A deep-zoom viewer of slides, pyramids and overlays."),
)
for _name, _fn, _short in COMMANDS:
    app.command(_name, cls=Command, short_help=_short)(_fn)
rails_app = typer.Typer(add_completion=False, no_args_is_help=True)
rails_app.command("fit", cls=Command, short_help="Learn rails from labelled tiles.")(rails_fit_cmd)
app.add_typer(
    rails_app, name="rails", help="Seed 004's rails: fit on labelled tiles, then sift tiles.",
    short_help="Seed 004's rails: fit on labelled tiles, then sift tiles.",
)  # fmt: skip
