"""The report of a real stage-1 + rewrite run, built on a LocalCluster and opened from the file
system in headless Chromium: rows, sorting, filtering, escaping, pictures, no console errors."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from tests.helpers.browser import Browser, artefact_dir, chromium_available, dialogs
from tests.report.conftest import MARKUP, SCRIPT_NAME

pytestmark = pytest.mark.skipif(not chromium_available(), reason="Debian chromium not installed")
READY = (
    "document.querySelector('#slides') && document.querySelector('#slides').dataset.ready === '1'"
)


def _rows(b: Browser) -> list[list[str]]:
    return b.evaluate(
        "[...document.querySelectorAll('#slides tbody tr')].map(tr => "
        "[...tr.children].map(td => td.textContent))"
    )


def _column(b: Browser, label: str) -> int:
    heads = b.evaluate(
        "[...document.querySelectorAll('#slides thead th')].map(th => th.textContent)"
    )
    return next(i for i, h in enumerate(heads) if h.startswith(label))


def test_report_files_and_escaping(report_out):
    out, summary = report_out
    report = out / "report"
    assert summary.n_slides == 4 and summary.n_pages_failed == 0
    index = (report / "index.html").read_text()
    data = (report / "data" / "slides.js").read_text()
    assert (
        "<script>alert" not in data and "</script" not in data.lower()
    )  # JSON escaped for <script>
    extract = json.loads((report / "data" / "slides.json").read_text())
    names = {r[extract["fields"].index("name")] for r in extract["rows"]}
    assert names == {SCRIPT_NAME, "case 2/pens.tiff", "sparse.svs", "broken.svs"}
    pages = {p.name: p.read_text() for p in (report / "slides").glob("*.html")}
    assert len(pages) == 4
    tricky = next(t for t in pages.values() if "alert(1)" in t)
    assert (
        "<script>alert(1)" not in tricky and "&lt;script&gt;alert(1)&lt;/script&gt;.svs" in tricky
    )
    assert "<img src=x" not in tricky and "&lt;img src=x onerror=" in tricky
    assert len(re.findall(r"<script\b", tricky)) == 0 and len(re.findall(r"<script\b", index)) == 2


def test_slide_pictures_are_readable_and_top_tiles_are_small_jpegs(report_out):
    out, _ = report_out
    folders = [p for p in (out / "report" / "slides").iterdir() if p.is_dir()]
    with_tiles = [p for p in folders if (p / "classes.jpg").exists()]
    assert len(with_tiles) == 3  # the broken slide has no tiles
    for folder in with_tiles:
        for name in ("overview.jpg", "classes.jpg", "scores.jpg"):
            with Image.open(folder / name) as im:
                assert max(im.size) >= 1024, (folder.name, name, im.size)
        tops = sorted((folder / "top").glob("*.jpg"))
        assert 1 <= len(tops) <= 6
        with Image.open(tops[0]) as im:
            assert im.format == "JPEG" and max(im.size) <= 384
        assert (folder / "steps").is_dir() and len(list((folder / "steps").glob("*.png"))) >= 7
        assert json.loads((folder / "contours.geojson").read_text())["type"] == "FeatureCollection"


def test_dataset_page_in_chromium(report_out):
    out, _ = report_out
    shots = artefact_dir("report")
    with Browser(1600, 1000) as b:
        b.goto((out / "report" / "index.html").as_uri(), READY)
        rows = _rows(b)
        name_col = _column(b, "slide")
        assert sorted(r[name_col] for r in rows) == sorted(
            [SCRIPT_NAME, "case 2/pens.tiff", "sparse.svs", "broken.svs"]
        )
        # the script name is text in a link, not an element
        assert b.evaluate("document.querySelectorAll('#slides tbody script').length") == 0
        link = b.evaluate(
            "[...document.querySelectorAll('#slides td.name a')].map(a => a.textContent)"
            f".includes({json.dumps(SCRIPT_NAME)})"
        )
        assert link
        b.wait_for(
            "[...document.querySelectorAll('#slides img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        b.full_screenshot(shots / "dataset.png")

        # sort by tissue %: descending first, then ascending; missing values last
        tissue_col = _column(b, "tissue")
        b.evaluate(
            "[...document.querySelectorAll('#slides thead th')].find(th => th.textContent.startsWith('tissue (')).querySelector('button').click()"
        )
        values = [r[tissue_col] for r in _rows(b)]
        numbers = [float(v) for v in values if v != "–"]
        assert numbers == sorted(numbers, reverse=True) and values[-1] == "–"
        assert (
            b.evaluate("document.querySelector('#slides th[aria-sort]').getAttribute('aria-sort')")
            == "descending"
        )
        b.evaluate("document.querySelector('#slides th[aria-sort] button').click()")
        numbers = [float(v) for v in (r[tissue_col] for r in _rows(b)) if v != "–"]
        assert numbers == sorted(numbers)

        # filter: text, then status
        b.type_into("#filter", "script>")
        rows = _rows(b)
        assert [r[name_col] for r in rows] == [SCRIPT_NAME]
        b.type_into("#filter", "")
        b.evaluate(
            "(s => { s.value = 'failed'; s.dispatchEvent(new Event('change')); })(document.querySelector('#status'))"
        )
        rows = _rows(b)
        assert [r[name_col] for r in rows] == ["broken.svs"]
        assert "1 of 4" in b.evaluate(
            "document.querySelector('#shown').textContent"
        ) or "of 1" in b.evaluate("document.querySelector('#shown').textContent")
        b.screenshot(shots / "dataset-filtered.png")
        assert not b.errors(), b.errors()
        assert not dialogs(b)


def test_slide_page_in_chromium(report_out):
    out, _ = report_out
    shots = artefact_dir("report")
    page = next(
        p for p in (out / "report" / "slides").glob("*.html") if "alert(1)" in p.read_text()
    )
    with Browser(1600, 1000) as b:
        b.goto(page.as_uri())
        assert b.evaluate("document.querySelector('h1').textContent") == SCRIPT_NAME
        b.evaluate("document.querySelector('details.props').open = true")
        assert b.evaluate(
            f"[...document.querySelectorAll('table.meta td')].some(td => td.textContent === {json.dumps(MARKUP)})"
        )
        assert b.evaluate("document.querySelectorAll('img[src=x], main b').length") == 0
        b.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        b.wait_for("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        widths = b.evaluate(
            "[...document.querySelectorAll('.picture img')].map(i => i.naturalWidth)"
        )
        assert len(widths) == 3 and min(widths) >= 1024
        b.evaluate("window.scrollTo(0, 0)")
        b.full_screenshot(shots / "slide.png")
        assert not b.errors(), b.errors()
        assert not dialogs(b)
