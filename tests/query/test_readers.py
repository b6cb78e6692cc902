"""Every partitioned output reads directly in pandas, polars, pyarrow.dataset and DuckDB.

The hive convention: the partition column (``slide_id``) lives in the folder name only, so each
reader sees one string column, never a file column clashing with the partition key.
"""

from __future__ import annotations

import inspect

import duckdb
import pytest

from wsidist import layout
from wsidist.infer.config import InferConfig
from wsidist.infer.worker import InferTask, infer_slide
from wsidist.io.storage import Store
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.worker import SlideTask, process_slide


@pytest.fixture(scope="module")
def stage1_root(synthetic_slides, tmp_path_factory):
    """A stage-1 output of the three synthetic slides (one partition each), with predictions
    of the demo model on a coarse grid over the stage-1 masks (one partition each too)."""
    out = tmp_path_factory.mktemp("readers")
    store = Store(str(out))
    infer = InferConfig(models=("wsidist.demo.models:stained",), patch_px=64, level=1)
    for i, s in enumerate(synthetic_slides):
        task = SlideTask(str(s.path), f"synth-{i}")
        row = process_slide(task, Stage1Config(scale=16), store)
        assert row["status"] == "ok", row["error"]
        row = infer_slide(InferTask(task.slide_id, task.url), config=infer, store=store,
                          masks=store)  # fmt: skip
        assert row["status"] == "ok" and row["n_patches"] > 0, row["error"]
    return out


def _rows_per_slide(store: Store, folder: str) -> dict[str, int]:
    import pyarrow.parquet as pq

    counts = {}
    for key in store.list(folder):
        part = key.rsplit("/", 1)[-1].split("=", 1)[1]
        counts[part] = pq.read_metadata(store.path(f"{key}/part-0.parquet")).num_rows
    return counts


READERS = {
    "pandas": lambda path: _pandas(path),
    "polars": lambda path: _polars(path),
    "pyarrow.dataset": lambda path: _pyarrow(path),
    "duckdb": lambda path: _duckdb(path),
}


def _pandas(path):
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(path)
    return len(df), df["slide_id"].astype(str).value_counts().to_dict()


def _polars(path):
    pl = pytest.importorskip("polars")
    df = pl.read_parquet(path)
    counts = df.group_by("slide_id").len().rows()
    return df.height, {str(k): n for k, n in counts}


def _pyarrow(path):
    import pyarrow.dataset as ds

    table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    ids = table.column("slide_id").to_pylist()
    return table.num_rows, {i: ids.count(i) for i in set(ids)}


def _duckdb(path):
    con = duckdb.connect()
    rows = con.sql(
        f"SELECT slide_id::VARCHAR, count(*) FROM read_parquet('{path}/**/*.parquet', "
        "hive_partitioning = true) GROUP BY 1"
    ).fetchall()
    return sum(n for _, n in rows), dict(rows)


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("folder", layout.PARTITIONED_DIRS)
def test_partitioned_output_reads_directly(stage1_root, folder, reader):
    expected = _rows_per_slide(Store(str(stage1_root)), folder)
    assert len(expected) == 3 and all(expected.values())
    n, per_slide = READERS[reader](str(stage1_root / folder))
    assert n == sum(expected.values())
    assert per_slide == expected


def test_every_partitioned_key_is_listed():
    """A layout key with a ``slide_id=`` folder is under one of PARTITIONED_DIRS, and no
    partition file holds the partition column."""
    for name, fn in inspect.getmembers(layout, inspect.isfunction):
        params = inspect.signature(fn).parameters
        if list(params) != ["slide_id"]:
            continue
        key = fn("X")
        if f"{layout.PARTITION_COLUMN}=" in key:
            assert key.split("/", 1)[0] in layout.PARTITIONED_DIRS, name


@pytest.mark.parametrize("key", [layout.tiles_key, layout.predictions_key])
def test_a_partition_file_describes_itself(stage1_root, key):
    import pyarrow.parquet as pq

    table = pq.read_table(stage1_root / key("synth-0"))
    assert "slide_id" not in table.column_names
    assert table.schema.metadata[b"wsidist.slide_id"] == b"synth-0"
    assert table.schema.metadata[b"wsidist.url"].decode().endswith(".svs")
