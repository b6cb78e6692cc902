"""The dataset page with 10,000 slides (a generated table, no pixels): it loads fast, shows one
page of rows with lazy thumbnails, pages and filters over all rows, and shows QC flags."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa
import pytest

from tests.helpers.browser import Browser, artefact_dir, chromium_available
from wsidist.io.storage import Store
from wsidist.report.config import ReportConfig
from wsidist.report.driver import write_site
from wsidist.report.tables import dataset_rows

N = 10_000


def generated_output(root, n: int = N) -> Store:
    """A stage-1 ``slides.parquet`` of ``n`` slides with a ``qc_flags`` list column."""
    rng = np.random.default_rng(0)
    status = np.where(rng.random(n) < 0.03, "failed", "ok")
    flags = [["pen marks", "blurry"] if i % 97 == 0 else [] for i in range(n)]
    table = pa.table({
        "url": [f"/data/site{i % 7}/slide-{i:05d}.svs" for i in range(n)],
        "slide_id": [f"slide-{i:05d}" for i in range(n)],
        "status": status,
        "error": [None if s == "ok" else "corrupt or truncated TIFF" for s in status],
        "warning": [None] * n,
        "vendor": rng.choice(["aperio", "hamamatsu", "generic-tiff"], n),
        "width": rng.integers(20_000, 200_000, n), "height": rng.integers(15_000, 120_000, n),
        "mpp_x": rng.choice([0.25, 0.5], n), "objective_power": rng.choice([20.0, 40.0], n),
        "tissue_frac": rng.random(n), "n_tiles": rng.integers(100, 30_000, n),
        "n_tissue_tiles": rng.integers(0, 10_000, n), "seconds": rng.gamma(2, 5, n),
        "scale": np.full(n, 32.0), "tile_px0": np.full(n, 1024),
        "qc_flags": pa.array(flags, pa.list_(pa.string())),
    })  # fmt: skip
    store = Store(str(root))
    store.write_parquet("slides.parquet", table)
    return store


@pytest.fixture(scope="module")
def big_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    store = generated_output(root / "out")
    rows = dataset_rows(store)
    started = time.perf_counter()
    write_site(Store(str(root / "report")), rows, ReportConfig(), source_label="generated")
    return root / "report", time.perf_counter() - started


def test_qc_flags_are_read_and_missing_tables_tolerated(tmp_path):
    rows = dataset_rows(generated_output(tmp_path, 200))
    assert rows[0]["qc"] == "pen marks; blurry" and rows[1]["qc"] is None
    assert rows[0]["name"] == "site0/slide-00000.svs"
    assert all(r["n_high"] is None for r in rows)  # no tiles/ written: the counts are empty


@pytest.mark.skipif(not chromium_available(), reason="Debian chromium not installed")
def test_ten_thousand_slides_load_fast_and_page(big_report):
    report, build_s = big_report
    assert build_s < 60
    extract = json.loads((report / "data" / "slides.json").read_text())
    assert len(extract["rows"]) == N
    with Browser(1600, 1000) as b:
        load_s = b.goto(
            (report / "index.html").as_uri(),
            "document.querySelector('#slides').dataset.ready === '1'",
        )
        assert load_s < 10, load_s
        assert b.evaluate("document.querySelectorAll('#slides tbody tr').length") == 50
        assert b.evaluate("document.querySelectorAll('img').length") <= 50 + 12  # page + charts
        assert "of 10,000" in b.evaluate("document.getElementById('shown').textContent")
        b.click("#pager button:last-child")
        assert "page 200 of 200" in b.evaluate("document.getElementById('pager').textContent")
        b.type_into("#filter", "blurry")
        assert "of 104" in b.evaluate("document.getElementById('shown').textContent")
        qc_col = b.evaluate(
            "[...document.querySelectorAll('#slides thead th')].findIndex(th => th.textContent.startsWith('QC'))"
        )
        cells = b.evaluate(
            f"[...document.querySelectorAll('#slides tbody tr')].map(tr => tr.children[{qc_col}].textContent)"
        )
        assert set(cells) == {"pen marks; blurry"}
        b.type_into("#filter", "")
        started = time.perf_counter()
        b.evaluate(
            "[...document.querySelectorAll('#slides thead th')].find(th => th.textContent.startsWith('time')).querySelector('button').click()"
        )
        sort_s = time.perf_counter() - started
        assert sort_s < 2
        b.screenshot(artefact_dir("report") / "dataset-10000.png")
        assert not b.errors(), b.errors()
