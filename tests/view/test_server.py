"""The viewer's server over real HTTP (uvicorn on 127.0.0.1): DZI tiles equal Slide reads,
JPEG-XL pyramids decode, path escapes and unknown slides are 404, nothing can be written."""

from __future__ import annotations

import http.client
import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.view.conftest import SCRIPT_NAME
from wsidist.io.slide import open_slide
from wsidist.view.dzi import DeepZoom


def get(base: str, path: str) -> tuple[int, bytes, str]:
    """GET ``path`` sent exactly as given (no client-side normalisation of ``..``)."""
    host = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type") or ""
    finally:
        conn.close()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def keys(viewer) -> dict[str, str]:
    return {e.kind + ":" + e.name: e.key for e in viewer.catalog.entries.values()}


def test_catalogue_pairs_sources_with_their_pyramids(served):
    viewer, base = served
    entries = viewer.catalog.entries
    assert {e.kind for e in entries.values()} == {"slide", "pyramid"}
    for e in entries.values():
        if e.kind == "pyramid":
            assert entries[e.pair].pair == e.key and e.url.endswith(".tiff")
    status, body, kind = get(base, "/")
    assert status == 200 and "text/html" in kind
    assert SCRIPT_NAME.encode() not in body and b"&lt;script&gt;alert(1)&lt;/script&gt;.svs" in body


@pytest.mark.parametrize("kind", ["slide", "pyramid"])
def test_png_tiles_equal_read_region_at_the_same_level(served, kind):
    viewer, base = served
    entry = next(e for e in viewer.catalog.entries.values() if e.kind == kind and "plain" in e.name)
    with open_slide(entry.url) as slide:
        assert slide.backend == ("tifffile" if kind == "pyramid" else "openslide")
        dz = DeepZoom(*slide.dimensions)
        checked = 0
        for slide_level, ds in enumerate(slide.level_downsamples):
            level = dz.max_level - int(round(np.log2(ds)))
            if 2 ** (dz.max_level - level) != ds:
                continue
            cols, rows = dz.tile_count(level)
            for col, row in {(0, 0), (cols // 2, rows // 2), (cols - 1, rows - 1)}:
                status, data, ctype = get(base, f"/dzi/{entry.key}_files/{level}/{col}_{row}.png")
                assert status == 200 and ctype == "image/png"
                x0, y0, x1, y1 = dz.tile_box(level, col, row)
                want = slide.read_region(x0 * ds, y0 * ds, slide_level, (x1 - x0, y1 - y0))
                assert np.array_equal(decode(data), want), (kind, level, col, row)
                checked += 1
        assert checked >= 6  # at least two slide levels


def test_jpeg_xl_pyramid_tiles_decode(served):
    viewer, base = served
    entry = next(e for e in viewer.catalog.entries.values() if e.kind == "pyramid")
    status, xml, _ = get(base, f"/dzi/{entry.key}.dzi")
    assert status == 200 and b'TileSize="254"' in xml
    with open(entry.url, "rb") as fh:
        import tifffile

        with tifffile.TiffFile(fh) as tif:
            assert tif.pages[0].compression == 50002  # JPEG-XL: no OpenSlide would open it
    with open_slide(entry.url) as slide:
        dz = DeepZoom(*slide.dimensions)
        level = dz.max_level
        x0, y0, x1, y1 = dz.tile_box(level, 3, 3)
        want = slide.read_region(x0, y0, 0, (x1 - x0, y1 - y0))
    status, data, ctype = get(base, f"/dzi/{entry.key}_files/{level}/3_3.jpeg")
    assert status == 200 and ctype == "image/jpeg"
    err = np.abs(decode(data).astype(int) - want.astype(int)).mean()
    assert err < 3  # JPEG of the decoded JPEG-XL tile


def test_tiles_are_cached(served):
    viewer, base = served
    key = next(iter(viewer.catalog.entries))
    path = f"/dzi/{key}_files/8/0_0.jpeg"
    assert get(base, path)[0] == 200
    made = viewer.tiles_made
    for _ in range(3):
        assert get(base, path)[0] == 200
    assert viewer.tiles_made == made and viewer.cache.hits >= 3


@pytest.mark.parametrize(
    "path",
    [
        "/dzi/../../../../etc/passwd",
        "/dzi/..%2F..%2F..%2Fetc%2Fpasswd.dzi",
        "/dzi/%2e%2e/%2e%2e/etc/passwd.dzi",
        "/view/..%2Fslides.parquet",
        "/static/../server.py",
        "/static/%2e%2e/server.py",
        "/static/..%2Fserver.py",
        "/static/openseadragon/../../server.py",
        "/api/nosuchslide/info",
        "/api/..%2F..%2Fslides.parquet/contours.geojson",
        "/dzi//etc/passwd.dzi",
        "/dzi/nosuchslide_files/10/0_0.jpeg",
    ],
)
def test_path_escapes_are_404(served, path):
    _, base = served
    status, body, _ = get(base, path)
    assert status == 404, (path, status, body[:200])


def test_tiles_outside_the_pyramid_are_404_and_nothing_is_writable(served):
    viewer, base = served
    key = next(iter(viewer.catalog.entries))
    assert get(base, f"/dzi/{key}_files/99/0_0.jpeg")[0] == 404
    assert get(base, f"/dzi/{key}_files/8/999_0.jpeg")[0] == 404
    assert get(base, f"/dzi/{key}_files/8/0_0.bmp")[0] == 404
    req = urllib.request.Request(f"{base}/dzi/{key}.dzi", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 405
    assert urllib.parse.urlsplit(base).hostname == "127.0.0.1"


def test_overlay_endpoints(served):
    viewer, base = served
    key = next(e.key for e in viewer.catalog.entries.values() if e.kind == "slide")
    info = json.loads(get(base, f"/api/{key}/info")[1])
    assert set(info["layers"]) == {"mask", "contours", "grid", "selection"}
    assert info["pair"]["kind"] == "pyramid" and "score" in info["layers"]["grid"]["columns"]
    doc = json.loads(get(base, f"/api/{key}/contours.geojson")[1])
    assert doc["type"] == "FeatureCollection" and doc["features"]
    meta = json.loads(get(base, f"/api/{key}/grid.json?column=entropy")[1])
    grid = decode(get(base, f"/api/{key}/grid.png?column=entropy")[1])
    assert grid.shape[:2] == (meta["rows"], meta["cols"]) and meta["lo"] < meta["hi"]
    assert get(base, f"/api/{key}/grid.png?column=x")[0] == 404  # not a value column
    boxes = json.loads(get(base, f"/api/{key}/selection.json")[1])
    assert 1 <= len(boxes) <= 5 and {"x", "y", "w", "h", "score"} <= set(boxes[0])


def test_symlinks_out_of_a_root_are_not_served(view_out, tmp_path):
    from wsidist.view.app import make_viewer, running

    inside, outside = tmp_path / "root", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    source = next((view_out.parent / "slides").glob("*.tiff"))
    os.symlink(source, outside / "secret.tiff")
    (inside / "ok.tiff").write_bytes(source.read_bytes())
    os.symlink(outside / "secret.tiff", inside / "link-out.tiff")
    os.symlink(outside, inside / "dir-out")
    viewer, app = make_viewer([str(inside)])
    assert [e.name for e in viewer.catalog.entries.values()] == ["ok.tiff"]
    assert any(p.endswith("link-out.tiff") for p in viewer.catalog.skipped)
    with running(app) as base:
        assert get(base, "/dzi/ok.dzi")[0] == 200
        for key in ("link-out", "secret", "dir-out"):
            assert get(base, f"/dzi/{key}.dzi")[0] == 404
            assert get(base, f"/view/{key}")[0] == 404
    viewer.slides.close()


def test_transcoded_pyramids_and_real_formats_are_served(
    view_out, real_slides_dir, client, tmp_path
):
    """A lossless JPEG→JPEG-XL transcode, DICOM and NDPI, all through Slide: the served PNG
    tile at the finest level equals read_region."""
    from wsidist.stage2.config import RewriteConfig
    from wsidist.stage2.driver import run_rewrite
    from wsidist.view.app import make_viewer, running

    svs = next((view_out.parent / "slides").rglob("*.svs"))
    out = tmp_path / "out"
    table = run_rewrite([str(svs)], str(out), RewriteConfig(transcode=True), client=client)
    assert table.column("status").to_pylist() == ["ok"]
    targets = [
        str(out / "pyramids"),
        str(real_slides_dir / "dicom"),
        str(real_slides_dir / "test3-DAPI-2-(387).ndpi"),
    ]
    viewer, app = make_viewer(targets)
    assert len(viewer.catalog.entries) == 3
    with running(app) as base:
        for entry in viewer.catalog.entries.values():
            with open_slide(entry.url) as slide:
                dz = DeepZoom(*slide.dimensions)
                level = dz.max_level
                x0, y0, x1, y1 = dz.tile_box(level, 1, 1)
                want = slide.read_region(x0, y0, 0, (x1 - x0, y1 - y0))
            status, data, _ = get(base, f"/dzi/{entry.key}_files/{level}/1_1.png")
            assert status == 200 and np.array_equal(decode(data), want), entry.name
            status, data, _ = get(base, f"/dzi/{entry.key}_files/{level - 3}/0_0.jpeg")
            assert status == 200 and decode(data).std() > 1, entry.name
    viewer.slides.close()
