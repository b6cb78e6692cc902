"""``wsidist select --sample`` / ``--within-contours``: its options and what it prints."""

from __future__ import annotations

from typing import Annotated

from rich.text import Text

from wsidist import layout
from wsidist.cli.common import opt, shell_words
from wsidist.cli.output import console, fitted_table, print_closing, print_fitted, print_left_out

SampleOpt = Annotated[
    bool, opt("--sample", help="sample boxes on a grid over the stage-1 mask (seed 003)")
]
SizeOpt = Annotated[
    str | None, opt(help="--sample: box side, level-0 px or µm (256, 256px, 128um)", metavar="LEN")
]
StrideOpt = Annotated[
    str | None, opt(help="--sample: grid step, px or µm  [default: the size]", metavar="LEN")
]
JitterOpt = Annotated[
    str, opt(help="--sample: move boxes up to ±LEN, px or µm  [default: 0]", metavar="LEN")
]
SeedOpt = Annotated[int, opt(help="--sample: random seed  [default: 0]", metavar="N")]
PerClassOpt = Annotated[
    int | None, opt(help="--sample: exactly N boxes per class per slide", metavar="N")
]
ClassByOpt = Annotated[
    str | None,
    opt(help="--sample: SQL class of the tile at the box centre  [default: label, if any]",
        metavar="SQL"),
]  # fmt: skip
ClassesOpt = Annotated[
    str | None, opt(help="--sample: classes to balance, comma separated", metavar="A,B")
]
MinTissueOpt = Annotated[
    float, opt(help="--sample: least mask share of a box  [default: 0]", metavar="FRAC")
]
LabelsOpt = Annotated[
    bool, opt("--labels", help="--sample: over the label mask; a box's class is its label")
]
ClassAtOpt = Annotated[
    str, opt(help="--labels: the label at the box centre, or any pixel  [default: centre]",
             metavar="centre|any"),
]  # fmt: skip
ContoursOpt = Annotated[
    bool, opt("--within-contours", help="cover each tissue region with boxes (seed 001)")
]
PadOpt = Annotated[
    str, opt(help="--within-contours: grow regions by LEN  [default: 0]", metavar="LEN")
]
StraddleOpt = Annotated[
    bool, opt("--allow-straddle", help="--within-contours: a box may touch two regions")
]


def run_sample(out: str, to: str | None, geojson: str | None, where: str | None, **opts) -> None:
    """Sample, write the selection (and GeoJSON), print the per-class counts."""
    from wsidist.cli.output import reported
    from wsidist.query.geojson import write_selection_geojson
    from wsidist.query.sample import SampleConfig, sample
    from wsidist.query.select import failed_slides, write_selection

    with reported() as caught:
        classes = opts.pop("classes")
        if classes is not None:
            classes = tuple(c.strip() for c in classes.split(",") if c.strip())
        config = SampleConfig(classes=classes, where=where, **opts)
        result = sample(out, config)
        table = result.table
        url = write_selection(table, to or f"{out.rstrip('/')}/{layout.SELECTION_TABLE}")
        written = [f"{url.rpartition('/')[2]}  {table.num_rows} boxes (level-0 px)"]
        if geojson:
            n_files = len(write_selection_geojson(table, geojson))
            written.append(f"{geojson}  {n_files} GeoJSON files (QuPath)")
        excluded = failed_slides(out)
    caught.exit_on_error()
    print_counts(result.counts, table.num_rows, config)
    for line in result.notes:
        console.print(Text.assemble(("note: ", "bold"), line))
    print_left_out(excluded)
    next_steps = [f"wsidist extract {shell_words([url])} --to patches/"]
    if not table.num_rows:
        next_steps = ["loosen --where / --min-tissue / --classes: nothing was sampled"]
    print_closing(url.rpartition("/")[0] or ".", written, next_steps)


def print_counts(counts: list[dict], n_rows: int, config) -> None:
    """One line per slide and class: candidates, boxes, repeats (and coverage of regions)."""
    contours = config.within_contours
    headers = ["slide_id", "class", "candidates", "boxes", "repeats"]
    if contours:
        headers = ["slide_id", "class", "regions", "boxes", "covered"]
    rows = []
    for r in counts:
        name = "—" if r["class"] is None else str(r["class"])
        if contours:
            covered = r.get("min_region_covered")
            cov = "—" if covered is None else f"{100 * covered:.1f} %"
            rows.append([r["slide_id"], name, str(r.get("regions", 0)), str(r["selected"]), cov])
        else:
            short = " (short)" if r["short"] else ""
            rows.append([r["slide_id"], name, str(r["candidates"]), str(r["selected"]) + short,
                         str(r["repeats"])])  # fmt: skip
    slides = len({r["slide_id"] for r in counts})
    title = f"{n_rows} boxes sampled from {slides} slide(s)"
    if config.stride is not None and not contours and config.stride.unit == config.size.unit:
        title += f", overlap {max(0.0, 1 - config.stride.value / config.size.value):.0%}"
    print_fitted(*fitted_table(title, headers, rows, console.width))
    if contours:
        console.print("covered: the least share of a region's mask pixels inside a box")
