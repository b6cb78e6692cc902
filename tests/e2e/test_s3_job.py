"""Stage 1 reading slides from s3:// and writing to s3:// on a real S3 server (SeaweedFS)."""

import io

import duckdb
import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from wsidist.io.slide import open_slide
from wsidist.query.extract import extract
from wsidist.query.select import select
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1


@pytest.mark.slow
def test_stage1_from_s3_to_s3(
    s3, s3_bucket, real_slides_dir, synthetic_slides, tmp_path, s3_client
):
    fs = s3.filesystem()
    bucket = s3_bucket.removeprefix("s3://")
    fs.put_file(str(real_slides_dir / "CMU-1-Small-Region.svs"), f"{bucket}/in/cmu.svs")
    fs.put_file(str(synthetic_slides[0].path), f"{bucket}/in/synth.svs")
    fs.pipe_file(f"{bucket}/in/bad.svs", b"II*\x00 truncated")
    out = f"{s3_bucket}/run1"
    client = s3_client  # its workers started after the S3 server: they have its environment
    table = run_stage1(
        [f"{s3_bucket}/in/*.svs"],
        out,
        Stage1Config(scale=16),
        client=client,
        cache_dir=str(tmp_path / "cache"),
    )
    # then select on s3 and extract the selection to s3, on the same cluster
    selection = select(out, top=3, storage_options=s3.storage_options)
    index = extract(
        selection, f"{s3_bucket}/patches", size=256, client=client,
        storage_options=s3.storage_options,
    )  # fmt: skip
    rows = {r["slide_id"]: r for r in table.to_pylist()}
    assert rows["cmu"]["status"] == "ok" and rows["synth"]["status"] == "ok"
    assert rows["bad"]["status"] == "failed" and rows["bad"]["error"]
    assert rows["cmu"]["url"] == f"{s3_bucket}/in/cmu.svs"
    assert fs.exists(f"{bucket}/run1/masks/cmu.png")
    assert not [p for p in fs.find(f"{bucket}/run1") if "_tmp-" in p]

    with fs.open(f"{bucket}/run1/slides.parquet", "rb") as fh:
        assert pq.read_table(fh).num_rows == 3
    con = duckdb.connect()
    con.register_filesystem(fsspec.filesystem("s3", **s3.storage_options))
    counts = dict(
        con.sql(
            f"SELECT slide_id, count(*) FROM read_parquet('{out}/tiles/**/*.parquet', "
            "hive_partitioning = true) GROUP BY 1"
        ).fetchall()
    )
    assert counts == {"cmu": rows["cmu"]["n_tiles"], "synth": rows["synth"]["n_tiles"]}

    assert selection.num_rows == 6 and set(selection.column("slide_id").to_pylist()) == {
        "cmu",
        "synth",
    }
    with fs.open(f"{bucket}/patches/index.parquet", "rb") as fh:
        stored = pq.read_table(fh)
    assert stored.num_rows == 6 and set(stored.column("status").to_pylist()) == {"written"}
    assert index.column("sha256").to_pylist() == stored.column("sha256").to_pylist()
    first = stored.to_pylist()[0]
    patch = np.asarray(Image.open(io.BytesIO(fs.cat_file(f"{bucket}/patches/{first['key']}"))))
    url = next(r["url"] for r in selection.to_pylist() if r["slide_id"] == first["slide_id"])
    with open_slide(url, cache_dir=str(tmp_path / "cache")) as slide:
        region = slide.read_region(first["x"], first["y"], 0, (first["w"], first["h"]))
    expected = np.asarray(Image.fromarray(region).resize((256, 256), Image.Resampling.LANCZOS))
    assert patch.shape == (256, 256, 3)
    assert np.abs(patch.astype(int) - expected.astype(int)).mean() < 1.0


@pytest.mark.slow
def test_rewrite_from_s3_to_s3(
    s3, s3_bucket, real_slides_dir, synthetic_slides, tmp_path, s3_client
):
    """Stage 1 and the rewrite (lossy and transcode) read slides from and write to s3://."""
    from wsidist.stage2.config import RewriteConfig
    from wsidist.stage2.driver import run_rewrite

    fs = s3.filesystem()
    bucket = s3_bucket.removeprefix("s3://")
    fs.put_file(str(real_slides_dir / "CMU-1-Small-Region.svs"), f"{bucket}/in/cmu.svs")
    fs.put_file(str(synthetic_slides[0].path), f"{bucket}/in/synth.svs")
    out = f"{s3_bucket}/stage2"
    cache = str(tmp_path / "cache")
    client = s3_client  # its workers started after the S3 server: they have its environment
    run_stage1([f"{s3_bucket}/in/synth.svs"], out, Stage1Config(), client=client,
               cache_dir=cache)  # fmt: skip
    lossy = run_rewrite([f"{s3_bucket}/in/*.svs"], out, RewriteConfig(), client=client,
                        cache_dir=cache)  # fmt: skip
    transcoded = run_rewrite([f"{s3_bucket}/in/cmu.svs"], f"{s3_bucket}/tc",
                             RewriteConfig(transcode=True), client=client, cache_dir=cache)  # fmt: skip
    rows = {r["slide_id"]: r for r in lossy.to_pylist()}
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert rows["synth"]["mask_source"] == "stage1" and rows["cmu"]["mask_source"] == "computed"
    assert transcoded.column("status").to_pylist() == ["ok"]
    assert not [p for p in fs.find(bucket) if "_tmp-" in p or ".part" in p]

    con = duckdb.connect()
    con.register_filesystem(fsspec.filesystem("s3", **s3.storage_options))
    stored = con.sql(
        f"SELECT slide_id, output_bytes, reduction_pct FROM read_parquet('{out}/pyramids.parquet')"
        " ORDER BY slide_id"
    ).fetchall()
    assert [(sid, n) for sid, n, _ in stored] == [
        ("cmu", rows["cmu"]["output_bytes"]),
        ("synth", rows["synth"]["output_bytes"]),
    ]
    assert fs.size(f"{bucket}/stage2/pyramids/synth.tiff") == rows["synth"]["output_bytes"]

    # the pyramids open from s3 through the same Slide contract as the sources
    tc_key = transcoded.column("key").to_pylist()[0]
    with (
        open_slide(f"{s3_bucket}/in/cmu.svs", cache_dir=cache) as source,
        open_slide(f"{out}/pyramids/cmu.tiff", cache_dir=cache) as lossy_cmu,
        open_slide(f"{s3_bucket}/tc/{tc_key}", cache_dir=cache) as exact_cmu,
    ):
        box = (960, 1200, 0, (480, 480))  # inside tissue on CMU
        a = source.read_region(*box)
        assert np.array_equal(exact_cmu.read_region(*box), a)  # transcode changes no pixel
        mse = np.mean((lossy_cmu.read_region(*box).astype(float) - a) ** 2)
        # --match-source: as close to the source pixels as the source is to its original
        source_psnr = rows["cmu"]["source_psnr_db"] or 35.0
        assert 10 * np.log10(255**2 / mse) >= min(35.0, source_psnr) - 2.0, source_psnr
