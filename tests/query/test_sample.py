"""``select --sample``: the sampling grid, perturbation, class balance and reproducibility,
checked on a stage-1 output of generated slides with an annotation of known geometry."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from shapely.geometry import box

from wsidist.demo.annotations import geojson_doc
from wsidist.demo.synth import CELL, TISSUE_LABELS
from wsidist.errors import ConfigError, WsidistError
from wsidist.query.sample import SampleConfig, sample, sample_counts
from wsidist.query.sample_config import parse_length
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1

SCALE = 16


def tumour_edge(truth) -> int:
    """The median tissue column of a generated slide, on a mask pixel border (level-0 px)."""
    cols = np.nonzero(np.isin(truth.labels, TISSUE_LABELS))[1]
    return int(round(np.median(cols) * CELL / SCALE)) * SCALE


@pytest.fixture(scope="module")
def labelled_out(synthetic_slides, client, tmp_path_factory):
    """Stage 1 (scale 16, 256-px tiles) on typical.svs and sparse.svs, each with a ``tumour``
    rectangle left of its median tissue column: tiles gain ``label``, masks ``labels/``."""
    folder = tmp_path_factory.mktemp("sample")
    notes = folder / "annotations"
    notes.mkdir()
    slides = [s for s in synthetic_slides if s.path.name in ("typical.svs", "sparse.svs")]
    for s in slides:
        doc = geojson_doc({"tumour": box(0, 0, tumour_edge(s.truth), s.spec.height)})
        (notes / f"{s.path.stem}.geojson").write_text(json.dumps(doc))
    out = folder / "out"
    config = Stage1Config(scale=SCALE, tile_size=256)
    table = run_stage1([str(s.path) for s in slides], str(out), config, client=client,
                       annotations=str(notes))  # fmt: skip
    assert set(table["status"].to_pylist()) == {"ok"}, table["error"].to_pylist()
    return out


@pytest.fixture(scope="module")
def edges(synthetic_slides) -> dict[str, int]:
    """slide_id → the x where its tumour rectangle ends."""
    return {s.path.stem: tumour_edge(s.truth) for s in synthetic_slides}


def _slides(out) -> dict[str, dict]:
    rows = duckdb.sql(f"SELECT * FROM '{out}/slides.parquet'").fetchall()
    names = [d[0] for d in duckdb.sql(f"SELECT * FROM '{out}/slides.parquet' LIMIT 0").description]
    return {r[names.index("slide_id")]: dict(zip(names, r)) for r in rows}


def _boxes(table: pa.Table, *cols: str) -> list[tuple]:
    return list(zip(*(table.column(c).to_pylist() for c in cols)))


def test_balance_exact_when_both_classes_are_plentiful(labelled_out, edges):
    """Over the label mask: N boxes of each class per slide, none repeated, each box's class
    the label under its centre (tumour left of x = 1504, analytically)."""
    result = sample(labelled_out, SampleConfig(size="64", stride="32", per_class=12, labels=True))
    table = result.table
    for r in result.counts:
        assert r["candidates"] >= 12, r  # plentiful: the test's premise
    got = {(r["slide_id"], r["class"]): r["selected"] for r in result.counts}
    assert got == {(s, c): 12 for s in _slides(labelled_out) for c in ("tumour", "none")}
    assert set(table["draw"].to_pylist()) == {0}
    assert len(set(_boxes(table, "slide_id", "x", "y"))) == table.num_rows
    for sid, x, w, cls in _boxes(table, "slide_id", "x", "w", "class"):
        assert cls == ("tumour" if x + w / 2 < edges[sid] else "none")
    assert sample_counts(table) == result.counts


def test_balance_by_a_tile_expression(labelled_out):
    """``class_by`` is evaluated on the stage-1 tile holding the box centre."""
    config = SampleConfig(size="96", stride="96", per_class=5, class_by="tissue_class",
                          classes=("high", "medium"))  # fmt: skip
    table = sample(labelled_out, config).table
    con = duckdb.connect()
    con.register("picked", table)
    counts = con.sql("SELECT slide_id, class, count(*) FROM picked GROUP BY ALL").fetchall()
    assert {(c, n) for _, c, n in counts} == {("high", 5), ("medium", 5)}
    tiles = duckdb.sql(
        f"SELECT slide_id, x, y, w, h, tissue_class FROM read_parquet('{labelled_out}/tiles/"
        "**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    for sid, x, y, w, cls in _boxes(table, "slide_id", "x", "y", "w", "class"):
        cx, cy = x + w / 2, y + w / 2
        holding = {t[5] for t in tiles if t[0] == sid and t[1] <= cx < t[1] + t[3]
                   and t[2] <= cy < t[2] + t[4]}  # fmt: skip
        assert holding == {cls}


def test_short_class_is_oversampled_with_perturbation(labelled_out):
    """A class with fewer candidates than N gets every candidate plus repeats, each moved by at
    most ±J and never onto another chosen box; the counts say so."""
    config = SampleConfig(size="256", stride="256", jitter="24", per_class=400, labels=True,
                          seed=5)  # fmt: skip
    result = sample(labelled_out, config)
    table = result.table
    slides = _slides(labelled_out)
    for r in result.counts:
        assert r["short"] and r["selected"] == 400
        assert r["repeats"] == 400 - r["candidates"] > 0
    assert len(set(_boxes(table, "slide_id", "x", "y"))) == table.num_rows
    rows = table.to_pylist()
    assert max(r["draw"] for r in rows) >= 2
    for r in rows:
        assert abs(r["jitter_dx"]) <= 24 and abs(r["jitter_dy"]) <= 24
        assert r["x"] == r["grid_x"] + r["jitter_dx"] and r["y"] == r["grid_y"] + r["jitter_dy"]
        s = slides[r["slide_id"]]
        assert 0 <= r["x"] <= s["width"] - r["w"] and 0 <= r["y"] <= s["height"] - r["h"]


def test_perturbation_within_j_and_inside_the_slide(labelled_out):
    slides = _slides(labelled_out)
    table = sample(labelled_out, SampleConfig(size="300", stride="150", jitter="80")).table
    dx, dy = np.array(table["jitter_dx"]), np.array(table["jitter_dy"])
    assert np.abs(dx).max() <= 80 and np.abs(dy).max() <= 80
    assert np.abs(dx).max() > 40 and np.count_nonzero(dx) > table.num_rows // 2  # it moves
    for r in table.to_pylist():
        s = slides[r["slide_id"]]
        assert r["x"] >= 0 and r["x"] + r["w"] <= s["width"]
        assert r["y"] >= 0 and r["y"] + r["h"] <= s["height"]
        assert r["grid_x"] % 150 == 0 and r["grid_y"] % 150 == 0


def test_same_seed_same_selection(labelled_out):
    config = dict(size="128", stride="64", jitter="30", per_class=20, labels=True)
    a = sample(labelled_out, SampleConfig(seed=7, **config)).table
    b = sample(labelled_out, SampleConfig(seed=7, **config)).table
    c = sample(labelled_out, SampleConfig(seed=8, **config)).table
    assert a.equals(b) and a.schema.metadata == b.schema.metadata
    assert _boxes(a, "x", "y") != _boxes(c, "x", "y")


@pytest.mark.parametrize(("size", "stride"), [("128", "32"), ("128", "64"), ("128", "96"),
                                               ("64um", "48um")])  # fmt: skip
def test_overlap_equals_one_minus_stride_over_size(labelled_out, size, stride):
    """Neighbouring boxes of the grid (no jitter) share 1 − stride/size of a box's area; µm
    sizes are the slide's px at its mpp (0.5 and 0.25 µm/px here)."""
    table = sample(labelled_out, SampleConfig(size=size, stride=stride)).table
    slides = _slides(labelled_out)
    checked = 0
    for sid in slides:
        rows = [r for r in table.to_pylist() if r["slide_id"] == sid]
        mpp = slides[sid]["mpp_x"]
        side = parse_length(size).px0(mpp)
        step = parse_length(stride).px0(mpp)
        by_origin = {(r["x"], r["y"]): r for r in rows}
        for r in rows:
            assert r["w"] == r["h"] == side
            right = by_origin.get((r["x"] + step, r["y"]))
            if right is None:
                continue
            shared = (r["x"] + side - right["x"]) * side
            assert shared / side**2 == pytest.approx(1 - step / side)
            checked += 1
    assert checked > 10


def test_bad_settings_fail_before_work(labelled_out):
    with pytest.raises(ConfigError, match="bad size"):
        SampleConfig(size="12 parsecs")
    with pytest.raises(ConfigError, match="within_contours"):
        SampleConfig(size="64", within_contours=True, jitter="8")
    with pytest.raises(ConfigError, match="does not fit"):
        sample(labelled_out, SampleConfig(size="100000"))
    with pytest.raises(WsidistError, match="bad class expression"):
        sample(labelled_out, SampleConfig(size="64", class_by="no_such_column"))


# -- contour patching (seed 001) ---------------------------------------------------------------
def _regions_mask() -> np.ndarray:
    """Three regions a few mask px apart (closer than a window), one with a hole, and a
    diagonal neighbour: windows of 16 mask px cannot avoid touching two of them on a grid."""
    mask = np.zeros((90, 130), bool)
    yy, xx = np.mgrid[:90, :130]
    mask |= (yy - 30) ** 2 + (xx - 30) ** 2 < 20**2
    mask &= ~((yy - 30) ** 2 + (xx - 30) ** 2 < 5**2)  # a hole
    mask |= (yy - 30) ** 2 + (xx - 63) ** 2 < 10**2  # 3 px from the first
    mask[58:80, 74:120] = True  # below and right of the second
    return mask


def _straddles_and_cover(mask, ds, x, y, size):
    """(windows touching ≥ 2 regions, share of each region's pixel centres inside a window),
    from level-0 geometry: a window touches pixel (i, j) when their level-0 spans overlap."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, np.ones((3, 3), bool))
    cy, cx = (np.mgrid[: mask.shape[0], : mask.shape[1]] + 0.5) * ds
    inside = np.zeros(mask.shape, bool)
    straddling = 0
    for wx, wy in zip(x, y):
        i0, i1 = int(wy // ds), int(np.ceil((wy + size) / ds))
        j0, j1 = int(wx // ds), int(np.ceil((wx + size) / ds))
        straddling += len(set(np.unique(labels[i0:i1, j0:j1])) - {0}) > 1
        inside |= (wx <= cx) & (cx < wx + size) & (wy <= cy) & (cy < wy + size)
    covered = [float(inside[labels == k].mean()) for k in range(1, n + 1)]
    return straddling, covered


def test_contour_patches_cover_each_region_without_straddling():
    from wsidist.query.placement import contour_boxes

    mask, ds, size = _regions_mask(), 8.0, 128  # windows of 16 mask px
    width, height = 130 * 8 - 3, 90 * 8 - 5
    found = contour_boxes(mask, ds, width, height, size, size)
    assert found.n_regions == 3
    straddling, covered = _straddles_and_cover(mask, ds, found.x, found.y, size)
    assert straddling == 0
    assert covered == [1.0, 1.0, 1.0] == found.region_covered.tolist()
    assert ((found.x >= 0) & (found.x + size <= width)).all()
    assert ((found.y >= 0) & (found.y + size <= height)).all()
    allowed = contour_boxes(mask, ds, width, height, size, size, allow_straddle=True)
    assert _straddles_and_cover(mask, ds, allowed.x, allowed.y, size)[0] > 0  # it can fail
    assert _straddles_and_cover(mask, ds, allowed.x, allowed.y, size)[1] == [1.0, 1.0, 1.0]


def test_contour_grid_phase_minimises_windows_then_glass():
    """Per region, the chosen grid needs no more windows than the plain grid from the region's
    bounding-box corner, and with as many windows holds no more glass; over the mask, less."""
    from scipy import ndimage

    from wsidist.query.placement import contour_boxes

    mask, ds, size = _regions_mask(), 8.0, 128
    found = contour_boxes(mask, ds, 2000, 2000, size, size, allow_straddle=True)
    labels, _ = ndimage.label(mask, np.ones((3, 3), bool))
    cy, cx = (np.mgrid[: mask.shape[0], : mask.shape[1]] + 0.5) * ds

    def cost(windows, k):  # (windows holding region k, their glass in mask px)
        kept = [
            (x, y)
            for x, y in windows
            if (labels[(x <= cx) & (cx < x + size) & (y <= cy) & (cy < y + size)] == k).any()
        ]
        glass = sum(int((~mask[(x <= cx) & (cx < x + size) & (y <= cy) & (cy < y + size)]).sum())
                    for x, y in kept)  # fmt: skip
        return len(kept), glass

    totals = np.zeros((2, 2))
    for k, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        plain = [(x, y) for y in range(rows.start * 8, rows.stop * 8, size)
                 for x in range(cols.start * 8, cols.stop * 8, size)]  # fmt: skip
        chosen = cost(list(zip(found.x[found.region == k], found.y[found.region == k])), k)
        corner = cost(plain, k)
        assert chosen <= corner
        totals += [chosen, corner]
    assert tuple(totals[0]) < tuple(totals[1])


def test_within_contours_on_a_stage1_output(labelled_out):
    """Every region of each slide's stage-1 mask is covered, no box touches two regions, and
    the rows are ordered by region (the order extraction and its mosaic follow)."""
    from PIL import Image

    config = SampleConfig(size="128", within_contours=True, pad="32")
    result = sample(labelled_out, config)
    table = result.table
    for r in result.counts:
        assert r["regions"] >= 1 and r["min_region_covered"] == 1.0
    for sid in {r["slide_id"] for r in result.counts}:
        rows = [r for r in table.to_pylist() if r["slide_id"] == sid]
        assert [r["sample_index"] for r in rows] == list(range(len(rows)))
        assert [r["region"] for r in rows] == sorted(r["region"] for r in rows)
        mask = np.asarray(Image.open(labelled_out / "masks" / f"{sid}.png")) > 0
        x, y = [r["x"] for r in rows], [r["y"] for r in rows]
        straddling, covered = _straddles_and_cover(mask, SCALE, x, y, 128)
        assert straddling == 0 and min(covered) == 1.0


# -- extraction of sampled boxes ----------------------------------------------------------------
def test_extract_of_off_grid_boxes_equals_a_direct_read(labelled_out, client, tmp_path):
    """Perturbed boxes fall between stage-1 tiles; extraction writes exactly their pixels (as
    ``Slide.read_region`` gives them), and the dataset reader yields the same."""
    from PIL import Image

    from wsidist.data import TileDataset
    from wsidist.io.slide import open_slide
    from wsidist.query.extract import extract

    config = SampleConfig(size="100", stride="100", jitter="37", per_class=3, labels=True, seed=1)
    selection = sample(labelled_out, config).table
    assert any(x % 256 for x in selection["x"].to_pylist())  # off the stage-1 grid
    index = extract(selection, str(tmp_path / "patches"), client=client)
    patches = [r for r in index.to_pylist() if r["kind"] == "patch"]
    assert len(patches) == selection.num_rows and {r["status"] for r in patches} == {"written"}
    dataset = TileDataset(selection)
    by_box = {(r["slide_id"], r["x"], r["y"]): r for r in patches}
    for i, row in enumerate(selection.to_pylist()):
        written = by_box[(row["slide_id"], row["x"], row["y"])]
        got = np.asarray(Image.open(tmp_path / "patches" / written["key"]).convert("RGB"))
        with open_slide(row["url"]) as slide:
            direct = slide.read_region(row["x"], row["y"], 0, (row["w"], row["h"]))
        assert np.array_equal(got, direct)
        patch, record = dataset[i]
        assert np.array_equal(np.asarray(patch), direct) and record["class"] == row["class"]


def test_mosaic_of_contour_patches_records_the_order(labelled_out, client, tmp_path):
    from PIL import Image

    from wsidist.query.extract import extract

    selection = sample(labelled_out, SampleConfig(size="128", within_contours=True)).table
    index = extract(selection, str(tmp_path / "out"), mosaic=5, client=client).to_pylist()
    for sid in set(selection["slide_id"].to_pylist()):
        order = [r for r in selection.to_pylist() if r["slide_id"] == sid]
        placed = {r["mosaic_pos"]: r for r in index if r["slide_id"] == sid
                  and r["kind"] == "patch" and r["mosaic_pos"] is not None}  # fmt: skip
        n = min(5, len(order))
        assert sorted(placed) == list(range(n))
        assert [(placed[k]["x"], placed[k]["y"]) for k in range(n)] == [
            (r["x"], r["y"]) for r in order[:n]
        ]
        (mosaic,) = [r for r in index if r["slide_id"] == sid and r["kind"] == "mosaic"]
        grid = np.asarray(Image.open(tmp_path / "out" / mosaic["key"]).convert("RGB"))
        cols = int(np.ceil(np.sqrt(5)))
        for k in range(n):
            r, c = divmod(k, cols)
            tile = grid[r * 128 : (r + 1) * 128, c * 128 : (c + 1) * 128]
            patch = np.asarray(Image.open(tmp_path / "out" / placed[k]["key"]).convert("RGB"))
            assert np.array_equal(tile, patch)


def test_cli_prints_and_stores_the_per_class_counts(labelled_out, tmp_path):
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from wsidist.cli.app import app

    dest = tmp_path / "balanced.parquet"
    args = ["select", str(labelled_out), "--sample", "--labels", "--size", "32um", "--stride",
            "16um", "--jitter", "8", "--per-class", "9", "--seed", "3", "--to", str(dest)]  # fmt: skip
    res = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    table = pq.read_table(dest)
    counts = sample_counts(table)
    assert {(r["slide_id"], r["class"], r["selected"]) for r in counts} == {
        (s, c, 9) for s in ("typical", "sparse") for c in ("tumour", "none")
    }
    for r in counts:
        line = next(ln for ln in res.output.splitlines() if f"{r['slide_id']} " in ln
                    and f" {r['class']} " in ln)  # fmt: skip
        assert line.split()[2:4] == [str(r["candidates"]), "9"], line
    assert "36 boxes sampled from 2 slide(s), overlap 50%" in res.output
    bad = CliRunner().invoke(app, ["select", str(labelled_out), "--per-class", "3"])
    assert bad.exit_code == 2 and "--per-class: only with --sample" in bad.output
    bad = CliRunner().invoke(app, ["select", str(labelled_out), "--sample"])
    assert bad.exit_code == 2 and "--sample needs --size" in bad.output


def test_missing_or_corrupt_masks_leave_their_slide_out_named(labelled_out, tmp_path):
    import shutil

    copy = tmp_path / "out"
    shutil.copytree(labelled_out, copy)
    (copy / "masks" / "sparse.png").unlink()
    (copy / "labels" / "typical.png").write_bytes(b"not a png")
    result = sample(copy, SampleConfig(size="64", labels=True))
    assert result.table.num_rows == 0
    assert any(n.startswith("sparse: left out, no stage-1 mask masks/sparse.png") for n in
               result.notes)  # fmt: skip
    assert any(n.startswith("typical: left out, cannot read its label mask") for n in
               result.notes)  # fmt: skip
    kept = sample(copy, SampleConfig(size="64", where="tissue_frac > 0.5"))
    assert set(kept.table["slide_id"].to_pylist()) == {"typical"}
    assert 0 < kept.table.num_rows < sample(copy, SampleConfig(size="64")).table.num_rows


def test_sample_of_an_s3_output_equals_the_local_one(labelled_out, s3, s3_bucket):
    fs = s3.filesystem()
    fs.put(str(labelled_out), f"{s3_bucket.removeprefix('s3://')}/run", recursive=True)
    for config in (SampleConfig(size="64", stride="32", jitter="9", per_class=7, labels=True),
                   SampleConfig(size="128", within_contours=True, pad="16")):  # fmt: skip
        remote = sample(f"{s3_bucket}/run", config, storage_options=s3.storage_options)
        local = sample(labelled_out, config)
        assert remote.table.num_rows > 0 and remote.table.equals(local.table)
        assert remote.counts == local.counts


def test_without_annotations_classes_come_from_class_by_only(synthetic_slides, client, tmp_path):
    """Tiles without a label column: boxes have no class, and per_class without class_by is
    refused before any mask is read."""
    sparse = next(s for s in synthetic_slides if s.path.name == "sparse.svs")
    out = tmp_path / "plain"
    run_stage1([str(sparse.path)], str(out), Stage1Config(scale=SCALE), client=client)
    result = sample(out, SampleConfig(size="128"))
    assert result.table.num_rows > 0 and set(result.table["class"].to_pylist()) == {None}
    assert [(r["class"], r["selected"]) for r in result.counts] == [(None, result.table.num_rows)]
    with pytest.raises(ConfigError, match="needs classes"):
        sample(out, SampleConfig(size="128", per_class=3))
