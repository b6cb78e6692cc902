"""``wsidist rails fit``: seed 004's entropy rails learned from labelled tiles."""

from __future__ import annotations

from typing import Annotated

import typer

from wsidist.cli.common import default, opt, shell_words
from wsidist.cli.output import console, print_closing, reported


def _floats(text: str, what: str, n: int | None = None) -> list[float]:
    from wsidist.errors import WsidistError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise WsidistError(f"bad {what} {text!r}: give numbers separated by commas") from None
    if n is not None and len(values) != n:
        raise WsidistError(f"bad {what} {text!r}: give {n} numbers, e.g. 0,1")
    return values


def rails_fit_cmd(
    source: Annotated[
        str,
        typer.Argument(
            help="stage-1 output run with --annotations, or a Parquet table", metavar="SOURCE"
        ),
    ],
    label: Annotated[str, opt(help="the diagnostic class, e.g. tumour", metavar="CLASS")],
    to: Annotated[
        str | None,
        opt("--to", help="rails JSON  [default: SOURCE/rails-CLASS.json]", metavar="FILE"),
    ] = None,
    tile_size: Annotated[
        int | None,
        opt(help="tile side in level-0 px  [default: the labelled tiles' one size]", metavar="PX"),
    ] = None,
    features: Annotated[
        str, opt(help=default("tile columns to bound, comma-separated", "entropy"), metavar="COLS")
    ] = "entropy",
    quantiles: Annotated[
        str, opt(help=default("low,high quantiles (0,1: min and max)", "0,1"), metavar="LO,HI")
    ] = "0,1",
    min_tissue: Annotated[
        float | None, opt(help="only tiles with at least this tissue share", metavar="FRAC")
    ] = None,
) -> None:
    """Learn [low, high] of tile entropy (and other columns) from the tiles labelled CLASS.

    Writes a small JSON that stage 1 applies with --scorer rails:FILE and select with
    --rails FILE (tiles outside the rails are sifted out).
    """
    from wsidist.filters.rails import save_rails
    from wsidist.query.rails import fit_rails

    with reported() as caught:
        lo, hi = _floats(quantiles, "--quantiles", 2)
        cols = [c.strip() for c in features.split(",") if c.strip()]
        rails = fit_rails(
            source, label, features=cols, quantiles=(lo, hi), tile_px0=tile_size,
            min_tissue_frac=min_tissue,
        )  # fmt: skip
        dest = to or f"{source.rstrip('/')}/rails-{rails.label}.json"
        save_rails(rails, dest)
    caught.exit_on_error()
    bounds = ", ".join(f"{k} [{a:.4g}, {b:.4g}]" for k, (a, b) in rails.features.items())
    console.print(
        f"rails of {rails.label!r} from {rails.n_tiles} tiles of {rails.tile_px0} px: {bounds}",
        markup=False,
    )
    print_closing(
        dest.rpartition("/")[0] or ".",
        [dest.rpartition("/")[2]],
        [
            f"wsidist select OUT --rails {shell_words([dest])} --top 100",
            f"wsidist score SLIDES --out OUT --tile-size {rails.tile_px0} "
            f"--scorer rails:{shell_words([dest])}",
        ],
    )
