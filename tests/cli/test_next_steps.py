"""The next step stage 1 prints names the slides the job ran on, also when they came from a
manifest only, and it builds a valid rewrite job."""

from __future__ import annotations

import shlex

import pyarrow as pa
import pytest

from wsidist.cli.stage1 import stage1_closing
from wsidist.stage1.config import build_job
from wsidist.stage2.config import build_rewrite_job

OK = pa.table({"slide_id": ["a"], "status": ["ok"]})


def _rewrite_step(job) -> list[str]:
    _, _, steps = stage1_closing(job, OK)
    (step,) = [s for s in steps if s.startswith("wsidist rewrite")]
    return shlex.split(step.split("#")[0])[2:]


@pytest.mark.parametrize(
    ("inputs", "manifest", "expected"),
    [
        (None, "my slides.csv", ["--manifest", "my slides.csv", "--out", "out"]),
        (["a.svs"], "m.csv", ["a.svs", "--manifest", "m.csv", "--out", "out"]),
        (["a.svs", "b.svs"], None, ["a.svs", "b.svs", "--out", "out"]),
    ],
)
def test_rewrite_step_uses_the_manifest(inputs, manifest, expected):
    job = build_job(None, inputs=inputs, manifest=manifest, out="out")
    words = _rewrite_step(job)
    assert words == expected
    # the printed words make a rewrite job over the same slides
    fields = {"inputs": [w for w in words if not w.startswith("--") and w not in (manifest, "out")]}
    fields.update({"manifest": manifest, "out": "out"})
    rewrite = build_rewrite_job(None, **{k: v or None for k, v in fields.items()})
    assert (rewrite.inputs, rewrite.manifest) == (list(inputs or []), manifest)
