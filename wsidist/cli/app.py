"""Command line: ``wsidist info | score | select | extract | top-tiles | rewrite | restore |
infer | stain-fit | report | stats | view | demo | filters``.

Thin: parse, validate, delegate. One module per stage registers its commands here.
"""

from __future__ import annotations

import typer

from wsidist.cli.infer import infer_cmd, stain_fit_cmd
from wsidist.cli.info import info
from wsidist.cli.query import extract_cmd, select_tiles, top_tiles_cmd
from wsidist.cli.report import report_cmd, stats_cmd, view_cmd
from wsidist.cli.stage1 import demo, filters, score
from wsidist.cli.stage2 import restore_cmd, rewrite_cmd

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.command()(info)
app.command()(score)
app.command()(demo)
app.command("select")(select_tiles)
app.command("extract")(extract_cmd)
app.command("top-tiles")(top_tiles_cmd)
app.command()(filters)
app.command("rewrite")(rewrite_cmd)
app.command("restore")(restore_cmd)
app.command("infer")(infer_cmd)
app.command("stain-fit")(stain_fit_cmd)
app.command("report")(report_cmd)
app.command("stats")(stats_cmd)
app.command("view")(view_cmd)
