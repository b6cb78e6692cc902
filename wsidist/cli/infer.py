"""``wsidist infer | stain-fit``: models over overlapping patches into heatmaps; stain references."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wsidist.cli.common import (
    CacheDirOpt,
    CacheMaxGbOpt,
    OutOpt,
    OverwriteOpt,
    RangeCacheMbOpt,
    RangeConcurrencyOpt,
    RangeRequestMbOpt,
    RemoteReadOpt,
    SchedulerOpt,
    WorkersOpt,
    default,
    opt,
    shell_words,
)
from wsidist.cli.output import (
    Column,
    console,
    fail,
    num,
    print_closing,
    print_job_summary,
    slide_progress,
)
from wsidist.errors import WsidistError

INFER_COLUMNS: tuple[Column, ...] = (
    ("patches", lambda r: num(r["n_patches"], ".0f")),
    ("classes", lambda r: num(r["n_classes"], ".0f")),
    (
        "heatmap",
        lambda r: f"{r['heatmap_width']}×{r['heatmap_height']}" if r.get("heatmap_width") else "-",
    ),  # fmt: skip
    ("mask", lambda r: r.get("mask_source") or "-"),
    ("patches/s", lambda r: num(r["patches_per_s"], ".1f")),
    ("s", lambda r: num(r["seconds"], ".1f")),
)


def _split(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def infer_cmd(
    source: Annotated[
        list[str] | None,
        typer.Argument(help="a selection Parquet, a stage-1 output root, or slides/folders/globs"),
    ] = None,
    model: Annotated[
        list[str] | None,
        opt(
            help="an .onnx file, a TorchScript file or module:function (repeat: ensemble)",
            metavar="MODEL",
        ),
    ] = None,
    out: OutOpt = None,
    config: Annotated[
        Path | None, opt("--config", help="job YAML (kind: infer)", metavar="YAML")
    ] = None,
    patch_px: Annotated[
        int | None, opt(help="patch side, px at --level/--mpp", metavar="PX")
    ] = None,
    patch_um: Annotated[float | None, opt(help="patch side, µm (needs mpp)", metavar="UM")] = None,
    overlap: Annotated[
        float | None, opt(help="overlap of neighbours, 0..<1", metavar="FRAC")
    ] = None,
    level: Annotated[int | None, opt(help="pyramid level to read", metavar="N")] = None,
    mpp: Annotated[float | None, opt(help="read at this µm/px instead", metavar="UM")] = None,
    tta: Annotated[
        str | None, opt(help="test-time augmentation: flip,rot90", metavar="LIST")
    ] = None,
    heatmap_scale: Annotated[
        float | None, opt(help="level-0 px per heatmap px  [default: 32]", metavar="N")
    ] = None,
    tissue: Annotated[
        str | None, opt(help="tissue preset/spec when there is no stage-1 mask", metavar="SPEC")
    ] = None,
    min_tissue: Annotated[float | None, opt(help="grid patches need more", metavar="FRAC")] = None,
    threshold: Annotated[
        list[float] | None,
        opt(help="region threshold (repeat)  [default: 0.5 and 0.9]", metavar="P"),
    ] = None,
    region_class: Annotated[
        list[int] | None, opt("--class", help="class for region features (repeat)", metavar="K")
    ] = None,
    normalize: Annotated[str | None, opt(help="stain normaliser JSON", metavar="JSON")] = None,
    batch_size: Annotated[int | None, opt(help="patches per model call", metavar="N")] = None,
    model_threads: Annotated[int | None, opt(help="model threads per worker", metavar="N")] = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = None,
    cache_dir: CacheDirOpt = None,
    remote_read: RemoteReadOpt = None,  # noqa: ARG001 — applied by its callback
    range_concurrency: RangeConcurrencyOpt = None,
    range_request_mb: RangeRequestMbOpt = None,
    range_cache_mb: RangeCacheMbOpt = None,
    cache_max_gb: CacheMaxGbOpt = None,
) -> None:
    """Run a model over overlapping patches: heatmaps, uncertainty, predictions, regions."""
    from wsidist.infer.config import build_infer_job
    from wsidist.infer.driver import plan_infer, run_infer

    fields = dict(
        inputs=source or None, out=out, scheduler=scheduler, workers=workers,
        overwrite=overwrite, cache_dir=cache_dir, cache_max_gb=cache_max_gb, range_concurrency=range_concurrency,
        range_request_mb=range_request_mb, range_cache_mb=range_cache_mb, models=tuple(model) if model else None,
        patch_px=patch_px, patch_um=patch_um, overlap=overlap, level=level, mpp=mpp,
        tta=_split(tta), heatmap_scale=heatmap_scale, tissue=tissue, min_tissue=min_tissue,
        thresholds=tuple(threshold) if threshold else None,
        classes=tuple(region_class) if region_class else None, normalize=normalize,
        batch_size=batch_size, model_threads=model_threads,
    )  # fmt: skip
    try:
        job = build_infer_job(config, **fields)
        job.require_inputs_and_out()
        tasks, masks = plan_infer(job.inputs, job.storage_options)
    except WsidistError as exc:
        raise fail(str(exc)) from None
    try:
        with slide_progress("infer", len(tasks)) as on_result:
            table = run_infer(
                tasks, job.out, job.config, masks=masks, scheduler=job.scheduler,
                workers=job.workers, overwrite=job.overwrite, cache_dir=job.cache(),
                storage_options=job.storage_options, on_result=on_result,
            )  # fmt: skip
    except WsidistError as exc:
        raise fail(str(exc)) from None
    code = print_job_summary("infer", table, {t.slide_id for t in tasks}, INFER_COLUMNS)
    print_closing(
        job.out.rstrip("/"),
        ["inference.parquet  one row per slide", "heatmaps/<id>/  heatmaps (TIFF, PNG, npz)",
         "predictions/  one row per patch", "regions.parquet, region_features.parquet"],
        [f"wsidist view {shell_words([job.out])}   # the heatmaps over the slides"],
    )  # fmt: skip
    raise typer.Exit(code)


def stain_fit_cmd(
    reference: Annotated[str, typer.Argument(help="a reference patch (PNG/JPEG/TIFF) or slide")],
    to: Annotated[Path, opt("--to", help="the normaliser JSON to write", metavar="JSON")],
    method: Annotated[
        str, opt(help=default("macenko, reinhard or vahadane", "macenko"), metavar="NAME")
    ] = "macenko",
    patches: Annotated[
        int, opt(help=default("tissue patches read from a slide", 16), metavar="N")
    ] = 16,
    patch_px: Annotated[
        int, opt(help=default("side of those patches, px", 256), metavar="PX")
    ] = 256,
    level: Annotated[int, opt(help=default("level they are read at", 0), metavar="N")] = 0,
) -> None:
    """Fit a stain normaliser on a reference patch or slide and save it as JSON."""
    from wsidist.data.stain import fit_normalizer

    try:
        normalizer = fit_normalizer(
            reference, method, n_patches=patches, patch_px=patch_px, level=level
        )
        normalizer.save(to)
    except (WsidistError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"{method} normaliser fitted on {reference}", markup=False)
    print_closing(
        str(to.parent), [to.name],
        [f"wsidist infer OUT --model MODEL --out OUT --normalize {shell_words([str(to)])}"],
    )  # fmt: skip
