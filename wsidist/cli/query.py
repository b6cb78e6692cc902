"""``wsidist select | extract | top-tiles``: re-select tiles, extract patches, dynamic mode."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Annotated

import typer
from rich.text import Text

from wsidist import layout
from wsidist.cli.common import (
    CacheDirOpt,
    CacheMaxGbOpt,
    MppOpt,
    RangeCacheMbOpt,
    RangeConcurrencyOpt,
    RangeRequestMbOpt,
    RemoteReadOpt,
    ScaleOpt,
    SchedulerOpt,
    TileUmOpt,
    TissueOpt,
    WorkersOpt,
    cache_spec,
    default,
    opt,
    shell_words,
)
from wsidist.cli.output import (
    console,
    fitted_table,
    print_closing,
    print_fitted,
    print_left_out,
    print_lines,
    progress_bar,
    reported,
)
from wsidist.cli.sample import (
    ClassAtOpt,
    ClassByOpt,
    ClassesOpt,
    ContoursOpt,
    JitterOpt,
    LabelsOpt,
    MinTissueOpt,
    PadOpt,
    PerClassOpt,
    SampleOpt,
    SeedOpt,
    SizeOpt,
    StraddleOpt,
    StrideOpt,
    run_sample,
)
from wsidist.errors import WsidistError

TOP_TILE_PX = 256  # top-tiles' tile side in level-0 px, as the field's patch tools


def select_tiles(
    out: Annotated[str, typer.Argument(help="a stage-1 output folder or s3:// URL")],
    top: Annotated[int | None, opt(help="top N tiles per slide by score", metavar="N")] = None,
    where: Annotated[
        str | None, opt(help="SQL filter on tile and slide columns", metavar="SQL")
    ] = None,
    stratum: Annotated[
        list[str] | None,
        opt(
            help="FRAC:N, e.g. 0.8:10 (repeatable): up to N tiles per tissue band", metavar="FRAC:N"
        ),
    ] = None,  # fmt: skip
    to: Annotated[
        str | None, opt(help="selection Parquet  [default: OUT/selection.parquet]", metavar="FILE")
    ] = None,
    geojson: Annotated[
        str | None,
        opt(help="also write DIR/<slide_id>.geojson: the tiles as QuPath polygons", metavar="DIR"),
    ] = None,
    rails: Annotated[
        str | None, opt(help="keep tiles inside these rails (wsidist rails fit)", metavar="FILE")
    ] = None,
    sample: SampleOpt = False,
    size: SizeOpt = None,
    stride: StrideOpt = None,
    jitter: JitterOpt = "0",
    seed: SeedOpt = 0,
    per_class: PerClassOpt = None,
    class_by: ClassByOpt = None,
    classes: ClassesOpt = None,
    min_tissue: MinTissueOpt = 0.0,
    labels: LabelsOpt = False,
    class_at: ClassAtOpt = "centre",
    within_contours: ContoursOpt = False,
    pad: PadOpt = "0",
    allow_straddle: StraddleOpt = False,
) -> None:
    """Select tiles from a stage-1 output with DuckDB, without touching pixels.

    Writes OUT/selection.parquet (or --to): one row per tile (slide_id, url, x, y, w, h,
    level, mpp, score, rank, tissue_frac, level_count). Failed slides are left out.
    With --sample or --within-contours the rows are sampled boxes (--size, any level-0
    position) with their class, grid origin, perturbation and region; see docs/sampling.md.
    """
    sampling = {"size": size, "stride": stride, "jitter": jitter, "seed": seed,
                "per_class": per_class, "class_by": class_by, "classes": classes,
                "min_tissue": min_tissue, "pad": pad, "allow_straddle": allow_straddle,
                "labels": labels, "class_at": class_at}  # fmt: skip
    if rails:  # a tile filter; with --sample, on the tile at each box centre
        with reported() as caught:
            from wsidist.filters.rails import load_rails

            inside = load_rails(rails).where_sql()
            where = f"({where}) AND {inside}" if where and where.strip() else inside
        caught.exit_on_error()
    if sample or within_contours:
        with reported() as caught:
            if top is not None or stratum:
                raise WsidistError("--top and --stratum select tiles: not with --sample")
            if size is None:
                raise WsidistError("--sample needs --size (e.g. --size 256 or --size 128um)")
        caught.exit_on_error()
        run_sample(out, to, geojson, where, within_contours=within_contours, **sampling)
        return
    given = [k for k, v in sampling.items() if v not in (None, False, 0, 0.0, "0", "centre")]
    if given:
        with reported() as caught:
            names = ", ".join("--" + k.replace("_", "-") for k in given)
            raise WsidistError(f"{names}: only with --sample or --within-contours")
        caught.exit_on_error()
    from wsidist.query.geojson import write_selection_geojson
    from wsidist.query.select import failed_slides, select, selection_counts, write_selection

    with reported() as caught:
        strata = [_parse_stratum(s) for s in stratum or []] or None
        table = select(out, top=top, where=where, strata=strata)
        url = write_selection(table, to or f"{out.rstrip('/')}/{layout.SELECTION_TABLE}")
        written = [f"{url.rpartition('/')[2]}  {table.num_rows} rows"]
        if geojson:
            n_files = len(write_selection_geojson(table, geojson))
            written.append(f"{geojson}  {n_files} GeoJSON files (QuPath)")
        excluded = failed_slides(out)
    caught.exit_on_error()
    counts = selection_counts(table).to_pylist()
    rows = [[r["slide_id"], str(r["n_tiles"])] for r in counts]
    title = f"{table.num_rows} tiles selected from {len(counts)} slide(s)"
    print_fitted(*fitted_table(title, ["slide_id", "tiles"], rows, console.width))
    print_left_out(excluded)
    next_steps = [f"wsidist extract {shell_words([url])} --to patches/ --size 256"]
    if not table.num_rows:
        next_steps = ["loosen --where / --top / --stratum: nothing was selected"]
    root = url.rpartition("/")[0]
    print_closing(root or ".", written, next_steps)


def _parse_stratum(text: str) -> tuple[float, int]:
    frac, sep, count = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(frac), int(count)
    except ValueError:
        raise WsidistError(f"bad --stratum {text!r}: expected FRAC:N, e.g. 0.8:10") from None


def extract_cmd(
    selection: Annotated[str, typer.Argument(help="selection Parquet (from wsidist select)")],
    dest: Annotated[str, opt("--to", help="destination folder or s3:// URL", metavar="DEST")],
    level: Annotated[int, opt(help=default("pyramid level to read", 0), metavar="N")] = 0,
    mpp: Annotated[
        float | None, opt(help="read at this µm/px instead of a level", metavar="UM")
    ] = None,
    size: Annotated[
        int | None, opt(help="resize patches to PX×PX  [default: as read]", metavar="PX")
    ] = None,
    fmt: Annotated[
        str, opt("--format", help=default("png, jpg or webp", "png"), metavar="FMT")
    ] = "png",
    quality: Annotated[int, opt(help=default("JPEG/WebP quality", 90), metavar="Q")] = 90,
    shard_mb: Annotated[
        float | None, opt(help="write WebDataset tar shards of about MB each", metavar="MB")
    ] = None,
    mosaic: Annotated[
        int | None, opt(help="also stitch N patches per slide into a mosaic", metavar="N")
    ] = None,
    edge: Annotated[
        str,
        opt(
            help=default("boxes clipped by the slide edge: pad (white) or drop", "pad"),
            metavar="MODE",
        ),
    ] = "pad",  # fmt: skip
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    remote_read: RemoteReadOpt = None,  # noqa: ARG001 — applied by its callback
    range_concurrency: RangeConcurrencyOpt = None,
    range_request_mb: RangeRequestMbOpt = None,
    range_cache_mb: RangeCacheMbOpt = None,
    cache_dir: CacheDirOpt = None,
    cache_max_gb: CacheMaxGbOpt = None,
) -> None:
    """Extract selected patches from the slides to a folder or bucket, with index.parquet.

    Writes DEST/<id>/<id>_x<x>_y<y>_l<level>.<ext> (or DEST/shards/<id>-<n>.tar with
    --shard-mb: each patch with its <key>.json metadata), DEST/mosaics/<id>.<ext> with
    --mosaic, and DEST/index.parquet. Non-square boxes are padded white, never stretched.
    """
    from wsidist.query.extract import extract

    cache = cache_spec(
        cache_dir, cache_max_gb, range_concurrency=range_concurrency,
        range_request_mb=range_request_mb, range_cache_mb=range_cache_mb,
    )  # fmt: skip

    def count(summary, counts) -> None:
        for name in counts:
            counts[name] += summary.get(name, 0)

    with contextlib.ExitStack() as stack:
        bar: list = []

        def start(n_slides: int) -> None:  # the options and slides are valid: show progress
            fields = ("written", "skipped", "failed")
            bar.append(stack.enter_context(progress_bar("extract", n_slides, fields, count)))

        with reported() as caught:
            index = extract(
                selection, dest, level=level, mpp=mpp, size=size, fmt=fmt, quality=quality,
                shard_bytes=int(shard_mb * 2**20) if shard_mb else None, mosaic=mosaic,
                edge=edge, scheduler=scheduler, workers=workers, on_start=start, cache_dir=cache,
                on_result=lambda summary: bar[0](summary),
            )  # fmt: skip
    caught.exit_on_error()
    rows = index.to_pylist()
    patches = [r for r in rows if r["kind"] == "patch"]
    counts = Counter(r["status"] for r in patches)
    dropped = f", {counts['dropped']} edge boxes dropped" if counts["dropped"] else ""
    padded = sum(r.get("edge") == "padded" for r in patches)
    padded = f", {padded} padded with white at the edge" if padded else ""
    console.print(
        f"{len(patches)} patches: {counts['written']} written, {counts['skipped']} unchanged, "
        f"{counts['failed']} failed{dropped}{padded}",
        markup=False,
    )
    failed = [r for r in rows if r["status"] == "failed"]
    print_lines(f"{len(failed)} failed, by reason:", failure_groups(failed), style="bold red")
    root = dest.rstrip("/")
    outputs = [f"{layout.PATCH_INDEX}  one row per object (key, slide_id, x, y, w, h, level, …)"]
    kinds = Counter(r["kind"] for r in rows if r["status"] != "failed")
    if kinds["patch"] and not shard_mb:
        outputs.append("<id>/<id>_x<x>_y<y>_l<level>.<ext>  the patches")
    if kinds["shard"]:
        outputs.append(f"shards/<id>-<n>.tar  {kinds['shard']} tar shard(s)")
    if kinds["mosaic"]:
        outputs.append(f"mosaics/<id>.<ext>  {kinds['mosaic']} mosaic(s)")
    print_closing(root, outputs, [f"read {root}/{layout.PATCH_INDEX} to load the patches"])
    raise typer.Exit(1 if failed else 0)


def failure_groups(failed: list[dict], limit: int = 10) -> list[Text]:
    """One line per distinct reason: its count and the slides it hit, most frequent first."""
    by_reason: dict[str, list[str]] = {}
    for r in failed:
        by_reason.setdefault(str(r.get("error") or "unknown"), []).append(r["slide_id"])
    ranked = sorted(by_reason.items(), key=lambda kv: -len(kv[1]))
    lines = []
    for reason, ids in ranked[:limit]:
        slides = sorted(set(ids))
        lines.append(Text.assemble((f"{len(ids)} × ", "bold"), reason, f" ({', '.join(slides)})"))
    if len(ranked) > limit:
        lines.append(Text(f"… and {len(ranked) - limit} other reason(s): see index.parquet"))
    return lines


def top_tiles_cmd(
    slide: Annotated[str, typer.Argument(help="a slide path or URL")],
    out: Annotated[str, opt("--out", help="folder (or URL) for the tiles", metavar="DIR")],
    n: Annotated[int, opt(help=default("number of tiles", 20), metavar="N")] = 20,
    size: Annotated[
        int | None, opt(help="resize tiles to PX×PX  [default: as read]", metavar="PX")
    ] = None,
    fmt: Annotated[str, opt("--format", help=default("png or jpg", "png"), metavar="FMT")] = "png",
    tissue: TissueOpt = None,
    scale: ScaleOpt = None,
    tile_size: Annotated[
        int | None,
        opt(help=default("tile side, level-0 px (or --tile-um)", TOP_TILE_PX), metavar="PX"),
    ] = None,
    tile_um: TileUmOpt = None,
    mpp: MppOpt = None,
    cache_dir: CacheDirOpt = None,
    cache_max_gb: CacheMaxGbOpt = None,
) -> None:
    """Dynamic mode: the best tiles straight from the slide, no intermediate files.

    Writes DIR/<id>_r<rank>_x<x>_y<y>.<ext>, best first: only tiles with at least
    min_tissue_frac tissue, so fewer than N on a slide with little tissue.
    """
    from wsidist.stage1.config import build_job
    from wsidist.stage1.dynamic import write_top_tiles

    cache = cache_spec(cache_dir, cache_max_gb)
    with reported(WsidistError, ValueError) as caught:  # ValueError: e.g. µm without mpp
        if tile_size is None and tile_um is None:
            tile_size = TOP_TILE_PX
        config = build_job(
            None, tissue=tissue, scale=scale, tile_size=tile_size, tile_um=tile_um, mpp=mpp
        ).config
        paths = write_top_tiles(slide, out, n=n, size=size, fmt=fmt, config=config, cache_dir=cache)
    caught.exit_on_error()
    found = f"wrote {len(paths)} tiles"
    if len(paths) < n:
        found = (
            f"found {len(paths)} of the {n} tiles asked with tissue ≥ min_tissue_frac "
            f"{config.min_tissue_frac:g}: wrote {len(paths)} tiles"
        )
    console.print(found, markup=False)
    print_closing(
        out.rstrip("/"),
        [f"<id>_r<rank>_x<x>_y<y>.{fmt}  {len(paths)} tiles, best first"],
        [f"wsidist score {shell_words([slide])} --out out/   # keep every tile's score"],
    )


def compact_cmd(
    out: Annotated[str, typer.Argument(help="a stage-1 output folder or s3:// URL")],
    buckets: Annotated[
        int | None,
        opt(help="bucket files  [default: the manifest's, or about 256 MB each]", metavar="N"),
    ] = None,
) -> None:
    """Rewrite the per-slide tile partitions into a few bucket files with a manifest.

    Slides are hashed into N buckets, each file sorted by slide_id with row-group statistics,
    and OUT/tiles/_manifest.json lists them, so select, report and view read a few files
    instead of one folder per slide. A slide re-run later wins over its compacted rows; run
    compact again to fold it in (only the buckets it touches are rewritten).
    """
    from wsidist.io.storage import Store
    from wsidist.runtime.compact import compact_tiles
    from wsidist.runtime.preflight import output_root

    with reported() as caught:
        done = compact_tiles(Store(output_root(out)), buckets=buckets)
    caught.exit_on_error()
    written = [
        f"tiles/{layout.TILES_MANIFEST.rpartition('/')[2]}  {done.n_buckets} bucket(s), "
        f"{done.buckets_written} written, {done.rows} rows",
        f"{done.slides_compacted} slide partition(s) folded in, {done.files_removed} file(s) "
        "removed",
    ]
    print_closing(out, written, [f"wsidist select {shell_words([out])} --top 20"])
