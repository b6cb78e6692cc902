"""``wsidist info``: each slide's metadata."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.text import Text

from wsidist.cli.output import console, fail, info_table, out_console
from wsidist.errors import SlideError, WsidistError


def info(
    slides: Annotated[list[str], typer.Argument(help="slide paths, folders, globs or URLs")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Print each slide's metadata: vendor, levels, mpp, objective, associated images."""
    from wsidist.io.inputs import expand_inputs
    from wsidist.io.slide import open_slide

    try:
        urls = expand_inputs(slides)
    except WsidistError as exc:
        raise fail(str(exc)) from None
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
        out_console.print(info_table(infos))
        for i in infos:
            for warning in i.warnings:
                console.print(Text.assemble((i.url, "yellow"), ": ", warning))
        for err in errors:
            console.print(Text.assemble((err["url"], "red"), ": ", err["error"]))
    if errors:
        raise typer.Exit(1)
