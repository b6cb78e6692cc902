"""The viewer in headless Chromium: tiles are fetched, overlays drawn (checked on screenshots),
toggles work, source and rewritten pyramid side by side stay in step, names are text."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from tests.helpers.browser import Browser, artefact_dir, chromium_available, dialogs
from tests.view.conftest import SCRIPT_NAME

pytestmark = pytest.mark.skipif(not chromium_available(), reason="Debian chromium not installed")
CONTOUR = np.array([0, 230, 90])


def shot(b: Browser, name: str) -> np.ndarray:
    path = b.screenshot(artefact_dir("view") / name)
    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB")).astype(int)


def near(image: np.ndarray, color: np.ndarray, tol: int = 40) -> int:
    return int((np.abs(image - color).max(axis=-1) <= tol).sum())


def settle(b: Browser, seconds: float = 1.5) -> None:
    """Wait until no tile has arrived for a while (the viewer is drawn)."""
    last, quiet = None, time.monotonic()
    while time.monotonic() - quiet < seconds:
        now = b.evaluate("document.body.dataset.tiles")
        if now != last:
            last, quiet = now, time.monotonic()
        time.sleep(0.1)


def test_viewer_fetches_tiles_and_draws_overlays(served):
    viewer, base = served
    key = next(e.key for e in viewer.catalog.entries.values() if e.name == SCRIPT_NAME)
    with Browser(1600, 1000) as b:
        b.goto(f"{base}/view/{key}", "document.body.dataset.ready === '1'")
        settle(b)
        assert b.evaluate("document.getElementById('title').textContent") == SCRIPT_NAME
        assert b.evaluate("document.querySelectorAll('header script').length") == 0
        tiles = b.requests(f"/dzi/{key}_files/")
        assert len(tiles) >= 4
        with_all = shot(b, "viewer-overlays.png")
        assert near(with_all, CONTOUR) > 300  # contour lines
        # the grid is coloured along the heat map where the tissue is
        assert b.evaluate("!!window.wsidistViewer.layers.grid") is True

        b.click("#show-grid")  # off
        b.click("#show-contours")  # off
        b.click("#show-selection")  # off
        time.sleep(0.8)
        plain = shot(b, "viewer-plain.png")
        assert near(plain, CONTOUR) < near(with_all, CONTOUR) / 10
        assert np.abs(plain - with_all).mean() > 2  # the grid's colours are gone too

        b.click("#show-mask")
        b.evaluate(
            "(s => { s.value = 'tissue_class'; s.dispatchEvent(new Event('change')); })(document.getElementById('grid-column'))"
        )
        b.click("#show-grid")
        b.wait_for("!!window.wsidistViewer.layers.grid")
        time.sleep(0.8)
        legend = b.evaluate("document.getElementById('legend-body').textContent")
        assert "high" in legend and "none" in legend
        shot(b, "viewer-mask-classes.png")
        assert not b.errors(), b.errors()
        assert not dialogs(b)


def test_source_and_pyramid_side_by_side_stay_in_step(served):
    viewer, base = served
    key = next(e.key for e in viewer.catalog.entries.values() if e.kind == "slide" and e.pair)
    with Browser(1600, 1000) as b:
        b.goto(f"{base}/view/{key}#compare", "document.body.dataset.pairOpen === '1'")
        settle(b)
        pair_key = viewer.catalog.entries[key].pair
        assert len(b.requests(f"/dzi/{pair_key}_files/")) >= 4  # the JPEG-XL pyramid's tiles
        b.evaluate(
            "(v => { v.viewport.zoomTo(v.viewport.getHomeZoom() * 4, null, true);"
            " v.viewport.panTo(new OpenSeadragon.Point(0.3, 0.25), true); })(window.wsidistViewer.main)"
        )
        settle(b)
        centres = b.evaluate(
            "[window.wsidistViewer.main, window.wsidistViewer.pair].map(v => "
            "[v.viewport.getCenter().x, v.viewport.getCenter().y, v.viewport.getZoom()])"
        )
        (ax, ay, az), (bx, by, bz) = centres
        assert (
            abs(ax - 0.3) < 0.02
            and abs(ax - bx) < 1e-6
            and abs(ay - by) < 1e-6
            and abs(az - bz) < 1e-6
        )
        image = shot(b, "viewer-side-by-side.png")
        left, right = image[200:900, 320:950], image[200:900, 980:1590]
        assert left.std() > 10 and right.std() > 10  # both drawn, not blank
        assert not b.errors(), b.errors()


def test_viewer_of_a_plain_slide_folder(view_out):
    from wsidist.view.app import make_viewer, running

    viewer, app = make_viewer([str(view_out / "pyramids")])  # a folder of JPEG-XL pyramids
    with running(app) as base, Browser(1400, 900) as b:
        key = next(iter(viewer.catalog.entries))
        b.goto(f"{base}/view/{key}", "document.body.dataset.tiles > 3")
        settle(b)
        assert b.evaluate("document.getElementById('show-grid').disabled") is True
        image = shot(b, "viewer-pyramid-folder.png")
        assert image[150:850, 320:1380].std() > 10
        assert json.loads(json.dumps(b.errors())) == []
    viewer.slides.close()
