"""``wsidist info``: each slide's metadata."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.text import Text

from wsidist.cli.common import opt, shell_words
from wsidist.cli.output import info_table, out_console, print_fitted, print_lines, reported
from wsidist.errors import SlideError


def info(
    slides: Annotated[
        list[str], typer.Argument(help="slide paths, folders, globs or URLs", metavar="SLIDES")
    ],
    as_json: Annotated[bool, opt("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Print each slide's metadata: vendor, levels, mpp, objective, associated images."""
    from wsidist.io.inputs import expand_inputs
    from wsidist.io.slide import open_slide

    with reported() as caught:
        urls = expand_inputs(slides)
    caught.exit_on_error()
    infos, errors = [], []
    for url in urls:
        try:
            with open_slide(url) as slide:
                infos.append(slide.info())
        except SlideError as exc:
            errors.append({"url": url, "error": str(exc)})
    if as_json:
        out_console.print_json(json.dumps([i.as_dict() for i in infos] + errors))
    else:
        print_fitted(*info_table(infos, out_console.width))
        print_lines(
            "reader notes:",
            (Text.assemble((i.url, "yellow"), ": ", w) for i in infos for w in i.warnings),
        )
        print_lines(
            f"{len(errors)} slide(s) cannot be read:",
            (Text.assemble((e["url"], "red"), ": ", e["error"]) for e in errors),
            style="bold red",
        )
        if infos:
            print_lines("next:", [f"wsidist score {shell_words(slides)} --out out/"])
    if errors:
        raise typer.Exit(1)
