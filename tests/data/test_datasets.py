"""Datasets read exactly the patches ``extract`` writes, in DataLoader workers, forks and on S3."""

from __future__ import annotations

import importlib.util
import io
import multiprocessing as mp

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from wsidist.data import SlideTileDataset, TarShardDataset, TileDataset
from wsidist.query.extract import extract

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")


def make_selection(slides) -> pa.Table:
    """12 boxes per slide: inside, on the right/bottom edges (clipped by the slide), odd sizes."""
    rows = []
    for s in slides[:2]:
        w, h = s.spec.width, s.spec.height
        boxes = [(x, y, 256, 256) for x in (0, 512, 1300) for y in (0, 700, 1400)]
        boxes += [(w - 100, 300, 256, 256), (500, h - 64, 256, 256), (333, 777, 300, 200)]
        for x, y, bw, bh in boxes:
            rows.append({"slide_id": s.path.stem, "url": str(s.path), "x": x, "y": y, "w": bw,
                         "h": bh, "score": float(x + y)})  # fmt: skip
    return pa.Table.from_pylist(rows)


def extracted(index: pa.Table, dest) -> dict[tuple[str, int, int], np.ndarray]:
    """(slide_id, x, y) → the decoded PNG extract wrote."""
    out = {}
    for r in index.to_pylist():
        if r["kind"] == "patch":
            data = (dest / r["key"]).read_bytes()
            out[(r["slide_id"], r["x"], r["y"])] = np.asarray(Image.open(io.BytesIO(data)))
    return out


@pytest.fixture(scope="module")
def selection(synthetic_slides) -> pa.Table:
    return make_selection(synthetic_slides)


@pytest.fixture(scope="module")
def extract_level0(selection, client, tmp_path_factory):
    dest = tmp_path_factory.mktemp("extract_l0")
    return extracted(extract(selection, str(dest), client=client), dest)


def _key(record) -> tuple[str, int, int]:
    return record["slide_id"], int(record["x"]), int(record["y"])


@needs_torch
def test_dataloader_with_two_workers_equals_extract(selection, extract_level0):
    import pyarrow.compute as pc
    from torch.utils.data import DataLoader

    assert len(TileDataset(selection, level=0)) == len(extract_level0) == selection.num_rows
    square = selection.filter(pc.equal(selection.column("h"), 256))  # batches need one size
    dataset = TileDataset(square, level=0)
    seen = 0
    for patches, records in DataLoader(dataset, batch_size=4, num_workers=2):
        for i, patch in enumerate(patches.numpy()):
            key = (records["slide_id"][i], int(records["x"][i]), int(records["y"][i]))
            np.testing.assert_array_equal(patch, extract_level0[key])
            seen += 1
    assert seen == square.num_rows == selection.num_rows - 2


def _read_in_child(dataset, indices, queue):
    queue.put([(i, dataset[i][0]) for i in indices])


def test_forked_workers_open_their_own_slides_and_equal_extract(selection, extract_level0):
    dataset = TileDataset(selection, level=0)
    first, record = dataset[0]  # the parent opens a slide before forking
    np.testing.assert_array_equal(first, extract_level0[_key(record)])
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    n = len(dataset)
    procs = [ctx.Process(target=_read_in_child, args=(dataset, range(k, n, 2), queue))
             for k in range(2)]  # fmt: skip
    for p in procs:
        p.start()
    results = [item for _ in procs for item in queue.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(i for i, _ in results) == list(range(n))
    for i, patch in results:
        np.testing.assert_array_equal(patch, extract_level0[_key(dataset.record(i))])
    again, _ = dataset[0]  # the parent's handles still work after the children read
    np.testing.assert_array_equal(again, first)


def test_mpp_and_size_read_as_extract_does(selection, client, tmp_path):
    index = extract(selection, str(tmp_path), mpp=1.3, client=client)
    expected = extracted(index, tmp_path)
    dataset = TileDataset(selection, mpp=1.3)
    for i in range(len(dataset)):
        patch, record = dataset[i]
        np.testing.assert_array_equal(patch, expected[_key(record)])
        assert record["read_mpp"] == pytest.approx(record["w"] * 0.5 / patch.shape[1], rel=1e-9) or \
            record["read_mpp"] == pytest.approx(record["w"] * 0.25 / patch.shape[1], rel=1e-9)  # fmt: skip
    sized = TileDataset(selection, level=0, size=64)
    assert all(sized[i][0].shape == (64, 64, 3) for i in range(3))


def test_slide_by_slide_iteration_covers_the_selection_once(selection, extract_level0):
    dataset = SlideTileDataset(selection, level=0)
    shares = [list(SlideTileDataset(selection, level=0).shard(k, 2)) for k in range(2)]
    assert {r["slide_id"] for _, r in shares[0]}.isdisjoint({r["slide_id"] for _, r in shares[1]})
    items = [item for share in shares for item in share]
    assert len(items) == len(dataset) == selection.num_rows
    for patch, record in items:
        np.testing.assert_array_equal(patch, extract_level0[_key(record)])
    ys = [r["y"] for _, r in shares[0]]
    assert ys == sorted(ys)  # top to bottom within the slide


@needs_torch
def test_iterable_dataset_in_a_dataloader(selection, extract_level0):
    from torch.utils.data import DataLoader

    items = list(DataLoader(SlideTileDataset(selection, level=0), batch_size=None, num_workers=2))
    assert len(items) == selection.num_rows
    assert {_key(r) for _, r in items} == set(extract_level0)


def test_tar_shards_read_back_as_the_patches(selection, extract_level0, client, tmp_path):
    index = extract(selection, str(tmp_path), shard_bytes=300_000, client=client)
    assert sum(r["kind"] == "shard" for r in index.to_pylist()) >= 3
    dataset = TarShardDataset.from_index(str(tmp_path))
    items = list(dataset)
    assert len(items) == selection.num_rows
    for patch, record in items:
        assert record["level"] == 0 and record["shard"].endswith(".tar")
        np.testing.assert_array_equal(patch, extract_level0[_key(record)])
    halves = [list(TarShardDataset(dataset.shards).shard(k, 2)) for k in range(2)]
    assert sum(map(len, halves)) == len(items)


def test_stain_normaliser_in_the_dataset(selection, tmp_path):
    from wsidist.imaging.stain import StainNormalizer

    plain = TileDataset(selection, level=0)
    norm = StainNormalizer.fit(plain[4][0], "macenko")
    norm.save(tmp_path / "ref.json")
    dataset = TileDataset(selection, level=0, normalizer=str(tmp_path / "ref.json"),
                          transform=lambda a: a[::2, ::2])  # fmt: skip
    for i in (1, 4, 7):
        np.testing.assert_array_equal(dataset[i][0], norm.normalize(plain[i][0])[::2, ::2])


def test_datasets_on_s3_slides(s3, s3_bucket, synthetic_slides, extract_level0, tmp_path):
    fs = s3.filesystem()
    rows = make_selection(synthetic_slides).to_pylist()
    for s in synthetic_slides[:2]:
        fs.put_file(str(s.path), f"{s3_bucket[5:]}/slides/{s.path.name}")
    for r in rows:
        r["url"] = f"{s3_bucket}/slides/{r['url'].rsplit('/', 1)[1]}"
    remote = pa.Table.from_pylist(rows)
    dataset = TileDataset(remote, level=0, cache_dir=str(tmp_path / "cache"))
    for i in range(0, len(dataset), 5):
        patch, record = dataset[i]
        assert record["url"].startswith("s3://")
        np.testing.assert_array_equal(patch, extract_level0[_key(record)])
    # a cluster started now, so that its workers see the S3 server's environment
    index = extract(remote, f"{s3_bucket}/shards", shard_bytes=400_000, workers=1)
    assert set(index.column("status").to_pylist()) == {"written"}, index.column("error")
    shards = TarShardDataset.from_index(f"{s3_bucket}/shards")
    assert all(u.startswith("s3://") for u in shards.shards)
    for patch, record in shards:
        np.testing.assert_array_equal(patch, extract_level0[_key(record)])
