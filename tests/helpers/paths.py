"""Where the tests find the repository and the real slides (one place for both)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SLIDES = REPO.parent / "shared" / "data" / "slides"
SLIDES = Path(os.environ.get("WSIDIST_TEST_SLIDES") or DEFAULT_SLIDES)
MISSING_SLIDES = (
    f"real slides not found at {SLIDES}: set WSIDIST_TEST_SLIDES to a folder holding "
    "CMU-1-Small-Region.svs, tcga-cr-7395-01a-01-ts1.svs, kidney-48-5.tif, … "
    "(the shared test slides)"
)

CMU = SLIDES / "CMU-1-Small-Region.svs"
TCGA = SLIDES / "tcga-cr-7395-01a-01-ts1.svs"
NDPI = SLIDES / "test3-DAPI-2-(387).ndpi"
DICOM = SLIDES / "dicom" / "cmu-1-small-region"
KIDNEY = SLIDES / "kidney-48-5.tif"
