"""wsidist.query.extract: real slides, a real LocalCluster of worker processes, local and S3 output."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from wsidist.errors import WsidistError
from wsidist.io.slide import open_slide
from wsidist.query.extract import INDEX_SCHEMA, extract
from wsidist.query.select import write_selection

META_FROM_INDEX = ("slide_id", "x", "y", "w", "h", "level", "mpp", "out_w", "out_h", "edge")
INDEX_COLUMNS = ["slide_id", "x", "y", "w", "h", "level", "mpp", "key", "bytes", "sha256",
                 "status"]  # fmt: skip


def selection_table(rows: list[tuple[str, str, int, int, int, int]]) -> pa.Table:
    """A selection by hand, with the columns wsidist.query.select.select returns."""
    n = len(rows)
    sid, url, x, y, w, h = (list(c) for c in zip(*rows))
    return pa.table({
        "slide_id": sid, "url": url, "x": x, "y": y, "w": w, "h": h,
        "level": [0] * n, "mpp": [None] * n, "score": [1.0] * n, "rank": list(range(n)),
        "tissue_frac": [1.0] * n,
    })  # fmt: skip


@pytest.fixture(scope="module")
def real_selection(real_slides_dir) -> pa.Table:
    cmu = str(real_slides_dir / "CMU-1-Small-Region.svs")
    kidney = str(real_slides_dir / "kidney-48-5.tif")
    return selection_table([
        ("CMU-1-Small-Region", cmu, 0, 0, 256, 256),
        ("CMU-1-Small-Region", cmu, 1000, 1500, 300, 200),
        ("CMU-1-Small-Region", cmu, 2100, 2900, 256, 256),  # crosses the edge: white outside
        ("kidney-48-5", kidney, 0, 0, 512, 512),
        ("kidney-48-5", kidney, 700, 300, 128, 256),
    ])  # fmt: skip


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def reference(url: str, x: int, y: int, w: int, h: int, level: int = 0) -> np.ndarray:
    with open_slide(url) as slide:
        ds = slide.level_downsamples[level]
        return slide.read_region(x, y, level, (round(w / ds), round(h / ds)))


def mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_png_exact_then_rerun_skips(real_selection, client, tmp_path):
    dest = tmp_path / "out"
    seen = []
    index = extract(real_selection, str(dest), client=client, on_result=seen.append)

    assert sorted(s["slide_id"] for s in seen) == ["CMU-1-Small-Region", "kidney-48-5"]
    assert all(s["written"] == s["n"] for s in seen)
    on_disk = pq.read_table(dest / "index.parquet")
    assert on_disk.schema.names == INDEX_SCHEMA.names
    assert set(INDEX_COLUMNS) <= set(on_disk.column_names)
    assert on_disk.num_rows == real_selection.num_rows
    assert on_disk.to_pylist() == index.to_pylist()
    assert set(on_disk["status"].to_pylist()) == {"written"}
    urls = dict(zip(real_selection["slide_id"].to_pylist(), real_selection["url"].to_pylist()))
    for row in on_disk.to_pylist():
        sid, x, y, w, h = row["slide_id"], row["x"], row["y"], row["w"], row["h"]
        assert row["key"] == f"{sid}/{sid}_x{x}_y{y}_l0.png"
        data = (dest / row["key"]).read_bytes()
        assert len(data) == row["bytes"]
        got = decode(data)
        np.testing.assert_array_equal(got, reference(urls[sid], x, y, w, h))
    cmu_mpp = on_disk.filter(pc.equal(on_disk["slide_id"], "CMU-1-Small-Region"))["mpp"]
    assert cmu_mpp.to_pylist() == [pytest.approx(0.499)] * 3  # CMU's mpp; kidney has none
    assert not list(dest.rglob("_tmp-*"))

    before = mtimes(dest)
    again = extract(real_selection, str(dest), client=client)
    assert set(again["status"].to_pylist()) == {"skipped"}
    assert again["sha256"].to_pylist() == index["sha256"].to_pylist()
    after = mtimes(dest)
    del before[str(dest / "index.parquet")], after[str(dest / "index.parquet")]
    assert after == before  # no patch was rewritten


def test_jpeg_resized_from_parquet_url(real_selection, client, tmp_path):
    sel_url = write_selection(real_selection, str(tmp_path / "selection.parquet"))
    dest = tmp_path / "jpg"
    index = extract(sel_url, str(dest), fmt="jpeg", quality=95, size=128, client=client)
    assert set(index["status"].to_pylist()) == {"written"}
    for row in index.to_pylist():
        assert row["key"].endswith(".jpg") and (row["out_w"], row["out_h"]) == (128, 128)
        got = decode((dest / row["key"]).read_bytes()).astype(np.float64)
        url = real_selection["url"].to_pylist()[
            real_selection["slide_id"].to_pylist().index(row["slide_id"])
        ]
        ref = reference(url, row["x"], row["y"], row["w"], row["h"])
        scale = 128 / max(row["w"], row["h"])  # uniform: a non-square box is padded, not stretched
        inner = (round(row["w"] * scale), round(row["h"] * scale))
        ref_in = np.asarray(Image.fromarray(ref).resize(inner, Image.Resampling.LANCZOS))
        ref = np.full((128, 128, 3), 255.0)
        ref[: inner[1], : inner[0]] = ref_in
        assert row["edge"] == ("whole" if row["w"] == row["h"] and row["y"] < 2900 else "padded")
        assert got.shape == (128, 128, 3)
        assert np.abs(got - ref).mean() < 6  # JPEG at quality 95


def test_level_and_mpp_on_pyramid(synthetic_slides, client, tmp_path):
    typical = next(s for s in synthetic_slides if s.path.name == "typical.svs")
    url = str(typical.path)
    with open_slide(url) as slide:
        assert slide.level_count >= 2 and slide.level_downsamples[1] == pytest.approx(4)
        mpp0 = slide.mpp_x
    sel = selection_table([("typical", url, 400, 800, 1024, 512), ("typical", url, 0, 0, 64, 64)])

    index = extract(sel, str(tmp_path / "l1"), level=1, client=client)
    for row in index.to_pylist():
        assert row["status"] == "written" and row["level"] == 1
        assert row["key"] == f"typical/typical_x{row['x']}_y{row['y']}_l1.png"
        got = decode((tmp_path / "l1" / row["key"]).read_bytes())
        np.testing.assert_array_equal(
            got, reference(url, row["x"], row["y"], row["w"], row["h"], 1)
        )
        assert row["mpp"] == pytest.approx(mpp0 * 4)

    target = mpp0 * 5  # between levels 1 (×4) and 2: read level 1, resize by 4/5
    index = extract(sel, str(tmp_path / "mpp"), mpp=target, client=client)
    row = index.to_pylist()[0]
    assert row["status"] == "written" and row["level"] == 1
    assert (row["out_w"], row["out_h"]) == (round(1024 / 5), round(512 / 5))
    assert row["mpp"] == pytest.approx(target, rel=0.01)
    got = decode((tmp_path / "mpp" / row["key"]).read_bytes()).astype(np.float64)
    ref = reference(url, 400, 800, 1024, 512, 1)
    ref = np.asarray(Image.fromarray(ref).resize(got.shape[1::-1], Image.Resampling.LANCZOS))
    assert np.abs(got - ref).mean() < 0.5  # same filter, lossless PNG


def test_missing_slide_fails_others_complete(real_selection, client, tmp_path):
    missing = str(tmp_path / "gone.svs")
    garbage = tmp_path / "garbage.svs"
    garbage.write_bytes(b"II*\x00 this is not a slide" * 10)
    extra = selection_table([("gone", missing, 0, 0, 64, 64), ("gone", missing, 64, 0, 64, 64),
                             ("garbage", str(garbage), 0, 0, 64, 64)])  # fmt: skip
    sel = pa.concat_tables([real_selection, extra])
    dest = tmp_path / "out"
    index = extract(sel, str(dest), client=client)
    by_status = {}
    for row in index.to_pylist():
        by_status.setdefault(row["slide_id"], set()).add(row["status"])
    assert by_status == {"CMU-1-Small-Region": {"written"}, "kidney-48-5": {"written"},
                         "gone": {"failed"}, "garbage": {"failed"}}  # fmt: skip
    failed = index.filter(pc.equal(index["status"], "failed")).to_pylist()
    assert len(failed) == 3
    assert all("gone.svs" in r["error"] for r in failed if r["slide_id"] == "gone")
    assert all(r["key"] is None and r["error"] for r in failed)
    assert not (dest / "gone").exists()
    assert len(list((dest / "CMU-1-Small-Region").glob("*.png"))) == 3


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"fmt": "tiff"}, "'tiff'"), ({"level": 1, "mpp": 0.5}, "mpp=0.5"),
     ({"mpp": -1.0}, "-1.0"), ({"size": 0}, "size"), ({"quality": 101}, "101"),
     ({"level": -2}, "-2")],
)  # fmt: skip
def test_bad_arguments_fail_before_work(kwargs, named, tmp_path):
    dest = tmp_path / "never"
    sel = selection_table([("x", str(tmp_path / "x.svs"), 0, 0, 8, 8)])
    with pytest.raises(WsidistError, match=named.replace(".", r"\.").replace("'", "'")):
        extract(sel, str(dest), scheduler="tcp://127.0.0.1:1", **kwargs)  # no scheduler there
    assert not dest.exists()


def test_bad_selection_fails_before_work(tmp_path):
    with pytest.raises(WsidistError, match="lacks column"):
        extract(pa.table({"slide_id": ["a"]}), str(tmp_path / "o"), scheduler="tcp://127.0.0.1:1")
    assert not (tmp_path / "o").exists()


def test_shards_and_mosaic(real_selection, client, tmp_path):
    dest = tmp_path / "wds"
    index = extract(real_selection, str(dest), shard_bytes=20_000, mosaic=3, client=client)
    patches = index.filter(pc.equal(index["kind"], "patch")).to_pylist()
    shards = index.filter(pc.equal(index["kind"], "shard")).to_pylist()
    mosaics = index.filter(pc.equal(index["kind"], "mosaic")).to_pylist()
    assert len(patches) == real_selection.num_rows
    assert {r["slide_id"] for r in shards} == {"CMU-1-Small-Region", "kidney-48-5"}
    assert not list(dest.glob("CMU-1-Small-Region/*.png"))  # shards instead of files
    urls = dict(zip(real_selection["slide_id"].to_pylist(), real_selection["url"].to_pylist()))
    selection_rows = real_selection.to_pylist()
    seen = 0
    for shard in shards:
        assert shard["key"].startswith(f"shards/{shard['slide_id']}-")
        assert shard["key"].endswith(".tar")
        with tarfile.open(dest / shard["key"]) as tar:
            names = tar.getnames()
            images, metas = names[0::2], names[1::2]  # WebDataset: a sample's members adjacent
            assert [n.rpartition(".")[0] for n in images] == [n[: -len(".json")] for n in metas]
            for name, meta_name in zip(images, metas):
                (row,) = [p for p in patches if p["member"] == name]
                assert row["key"] == shard["key"]
                got = decode(tar.extractfile(name).read())
                sid, x, y, w, h = row["slide_id"], row["x"], row["y"], row["w"], row["h"]
                np.testing.assert_array_equal(got, reference(urls[sid], x, y, w, h))
                meta = json.loads(tar.extractfile(meta_name).read())
                assert {k: meta[k] for k in META_FROM_INDEX} == {k: row[k] for k in META_FROM_INDEX}
                (sel,) = [
                    r for r in selection_rows if (r["slide_id"], r["x"], r["y"]) == (sid, x, y)
                ]
                assert {k: meta[k] for k in ("url", "score", "rank", "tissue_frac")} == {
                    k: sel[k] for k in ("url", "score", "rank", "tissue_frac")
                }
                assert meta["selection_level"] == sel["level"]
                seen += 1
    assert seen == len(patches)
    for shard in shards:  # a shard holds one sample, or samples (+2 KiB tar overhead) ≤ 20 kB
        members = [p for p in patches if p["key"] == shard["key"]]
        assert len(members) == 1 or sum(p["bytes"] + 1024 for p in members) <= 20_000
    assert len(shards) > 2  # the five patches (tens of kB) did not fit one shard per slide

    cmu = next(m for m in mosaics if m["slide_id"] == "CMU-1-Small-Region")
    assert cmu["key"] == "mosaics/CMU-1-Small-Region.png"
    grid = decode((dest / cmu["key"]).read_bytes())
    assert grid.shape == (2 * 256, 2 * 256, 3)  # ceil(sqrt(3)) = 2 columns, 2 rows of 256
    np.testing.assert_array_equal(
        grid[:256, :256], reference(urls["CMU-1-Small-Region"], 0, 0, 256, 256)
    )
    assert (grid[256:, 256:] == 255).all()  # the empty fourth cell stays white

    again = extract(real_selection, str(dest), shard_bytes=20_000, mosaic=3, client=client)
    assert set(again["status"].to_pylist()) == {"skipped"}  # deterministic tars


def test_extract_to_s3(real_selection, s3, s3_bucket, client):
    dest = f"{s3_bucket}/patches"
    index = extract(real_selection, dest, client=client, storage_options=s3.storage_options)
    assert set(index["status"].to_pylist()) == {"written"}
    fs = s3.filesystem()
    fs.invalidate_cache()
    with fs.open(f"{dest}/index.parquet", "rb") as fh:
        on_s3 = pq.read_table(fh)
    assert on_s3.to_pylist() == index.to_pylist()
    row = on_s3.to_pylist()[1]
    got = decode(fs.cat_file(f"{dest}/{row['key']}"))
    url = real_selection["url"].to_pylist()[1]
    np.testing.assert_array_equal(got, reference(url, row["x"], row["y"], row["w"], row["h"]))
    assert not [p for p in fs.find(dest) if "_tmp-" in os.path.basename(p)]

    again = extract(real_selection, dest, client=client, storage_options=s3.storage_options)
    assert set(again["status"].to_pylist()) == {"skipped"}


def test_from_stage1_selection(real_slides_dir, client, tmp_path):
    from wsidist.query.select import select
    from wsidist.stage1.config import Stage1Config
    from wsidist.stage1.driver import run_stage1

    inputs = [str(real_slides_dir / n) for n in ("CMU-1-Small-Region.svs", "kidney-48-5.tif")]
    out = tmp_path / "stage1"
    run_stage1(inputs, str(out), Stage1Config(scale=16, tile_size=512), client=client)
    sel = select(str(out), top=2)
    assert sel.num_rows == 4
    dest = tmp_path / "patches"
    index = extract(sel, str(dest), client=client)
    assert index.num_rows == 4 and set(index["status"].to_pylist()) == {"written"}
    for row, url in zip(index.to_pylist(), sel["url"].to_pylist()):
        got = decode((dest / row["key"]).read_bytes())
        assert got.shape[:2] == (row["h"], row["w"]) == (512, 512)
        np.testing.assert_array_equal(got, reference(url, row["x"], row["y"], row["w"], row["h"]))
