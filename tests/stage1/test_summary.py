"""``wsidist score`` names flagged slides in its summary; qc_flags reach slides.parquet; the
run also prints its LocalCluster's dashboard link (``--dashboard``)."""

from __future__ import annotations

import subprocess
import sys

import duckdb

from wsidist.demo.synth import SynthSpec, write_synthetic_slide


def test_score_summary_names_flagged_slides_and_parquet_holds_the_flags(tmp_path):
    write_synthetic_slide(tmp_path / "glass.svs", SynthSpec(width=2000, height=1500, n_blobs=0))
    write_synthetic_slide(
        tmp_path / "nompp.svs", SynthSpec(width=2500, height=1800, mpp=None, seed=3)
    )
    res = subprocess.run(
        [sys.executable, "-m", "wsidist.cli", "score", "glass.svs", "nompp.svs",
         "--out", "out", "--workers", "1", "--qc", "--dashboard"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Dask dashboard: http://127.0.0.1:" in res.stderr  # --dashboard on a LocalCluster
    assert "2 slide(s) flagged" in res.stderr
    assert "no_tissue" in res.stderr and "missing_mpp" in res.stderr
    assert "[no_tissue" in res.stderr  # the slide's note names its flags
    con = duckdb.connect()
    rows = con.execute(
        "SELECT slide_id, qc_flags, n_tissue_tiles FROM read_parquet(?) ORDER BY slide_id",
        [str(tmp_path / "out" / "slides.parquet")],
    ).fetchall()
    flags = {sid: set(f) for sid, f, _ in rows}
    assert flags["glass"] >= {"no_tissue"} and "missing_mpp" not in flags["glass"]
    assert flags["nompp"] >= {"missing_mpp"} and "no_tissue" not in flags["nompp"]
    (hits,) = con.execute(
        "SELECT count(*) FROM read_parquet(?) WHERE list_contains(qc_flags, 'no_tissue')",
        [str(tmp_path / "out" / "slides.parquet")],
    ).fetchone()
    assert hits == 1
    focus = con.execute(
        "SELECT count(focus), count(*) FILTER (WHERE tissue_tile) FROM read_parquet(?)",
        [str(tmp_path / "out" / "tiles" / "*" / "*.parquet")],
    ).fetchone()
    assert focus[0] == focus[1] > 0  # --qc measured every tissue tile, and only those
