"""What the commands print, at 80 columns: whole slide ids and paths, failures named."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from wsidist.cli import output
from wsidist.cli.query import failure_groups

LONG = [
    "TCGA-CR-7395-01A-01-TS1.9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
    "cmu-1-small-region-c8045e84",
]


@pytest.fixture
def screens(monkeypatch):
    """Both consoles as 80-column text buffers: (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(output, "out_console", Console(file=out, width=80, no_color=True))
    monkeypatch.setattr(output, "console", Console(file=err, width=80, no_color=True))
    return out, err


def _stage1_rows() -> pa.Table:
    rows = [
        {"slide_id": LONG[0], "status": "ok", "n_tiles": 1234, "n_tissue_tiles": 456,
         "tissue_frac": 0.612, "mpp_x": 0.2527, "seconds": 12.3, "error": None,
         "warning": "dark background (fluorescence?): brightfield tissue presets may not apply"},
        {"slide_id": LONG[1], "status": "failed", "n_tiles": None, "n_tissue_tiles": None,
         "tissue_frac": None, "mpp_x": None, "seconds": 0.2, "warning": None,
         "error": "/data/cmu-1-small-region.svs: corrupt or truncated TIFF (5000 bytes)"},
    ]  # fmt: skip
    return pa.Table.from_pylist(rows)


def _check_80(text: str) -> None:
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "…" not in text  # rich's ellipsis: nothing was cut


@pytest.mark.parametrize("kind", ["stage1", "rewrite"])
def test_job_summary_at_80_columns(screens, kind):
    out, err = screens
    if kind == "stage1":
        table, columns = _stage1_rows(), output.STAGE1_COLUMNS
    else:
        rows = [{**r, "glass_fraction": 0.4, "source_bytes": 3_901_814, "output_bytes": 4_999_999,
                 "reduction_pct": -28.1, "distance": 1.5, "psnr_db": 38.1, "ssim": 0.981,
                 "warning": "output 28 % larger than the source"}
                for r in _stage1_rows().to_pylist()]  # fmt: skip
        table, columns = pa.Table.from_pylist(rows), output.REWRITE_COLUMNS
    code = output.print_job_summary(kind, table, set(LONG), columns)
    output.print_closing("/a/rather/long/output/root/that/should/not/wrap/mid-name", ["x"], ["y"])
    assert code == 1
    shown = out.getvalue() + err.getvalue()
    _check_80(out.getvalue())
    lines = shown.splitlines()
    for sid in LONG:  # each id whole on one line
        assert any(sid in line for line in lines), sid
    assert any(line.strip().startswith(LONG[1] + ": ") and "corrupt" in line for line in lines)
    assert "1 of 2 slide(s) failed" in shown
    assert any("/a/rather/long/output/root/that/should/not/wrap/mid-name" in ln for ln in lines)


def test_short_ids_stay_in_the_table(screens):
    out, _ = screens
    rows = [{**r, "slide_id": f"s{i}"} for i, r in enumerate(_stage1_rows().to_pylist())]
    output.print_job_summary(
        "stage 1", pa.Table.from_pylist(rows), {"s0", "s1"}, output.STAGE1_COLUMNS
    )
    text = out.getvalue()
    _check_80(text)
    assert "slide_id" in text and "#" not in text.split("\n", 3)[2]


def test_failure_reasons_are_grouped_with_counts():
    failed = [{"slide_id": "a", "error": "no level 3"}] * 5 + [
        {"slide_id": "b", "error": "no level 3"},
        {"slide_id": "c", "error": "missing file"},
    ]
    lines = [t.plain for t in failure_groups(failed)]
    assert lines == ["6 × no level 3 (a, b)", "1 × missing file (c)"]


def _extract(*args: str, cwd) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "wsidist.cli", "extract", *args, "--workers", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**__import__("os").environ, "COLUMNS": "80"})  # fmt: skip


@pytest.fixture(scope="module")
def selection(synthetic_slides, tmp_path_factory):
    """Three boxes on a one-level slide's neighbours: a real slide and a missing one."""
    folder = tmp_path_factory.mktemp("sel")
    real = str(synthetic_slides[0].path)
    rows = [{"slide_id": "real", "url": real, "x": 256 * i, "y": 0, "w": 256, "h": 256,
             "mpp": 0.5, "level_count": 2} for i in range(3)]  # fmt: skip
    rows += [{"slide_id": "gone", "url": str(folder / "gone.svs"), "x": 0, "y": 0, "w": 64,
              "h": 64, "mpp": 0.5, "level_count": 1}] * 2  # fmt: skip
    path = folder / "selection.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_extract_checks_the_level_before_starting(selection, tmp_path):
    t0 = time.perf_counter()
    res = _extract(str(selection), "--to", "dest", "--level", "1", cwd=tmp_path)
    assert res.returncode == 2 and time.perf_counter() - t0 < 30
    assert "--level 1" in res.stderr and "gone (1 level)" in res.stderr
    assert "real" not in res.stderr.split("levels 0")[0].split("slide:")[-1]
    assert not (tmp_path / "dest").exists()  # nothing started, nothing written


def test_extract_names_reasons_with_counts_and_where(selection, tmp_path):
    res = _extract(str(selection), "--to", "dest", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    err = res.stderr
    assert "5 patches: 3 written, 0 unchanged, 2 failed" in err
    assert "2 failed, by reason:" in err and "2 × " in err and "(gone)" in err
    assert "outputs in dest:" in err and "index.parquet" in err and "next:" in err
    assert "extract" in err and "1/2" not in err.splitlines()[-1]  # the progress bar ran
    assert "UserWarning" not in err and "Traceback" not in err
    assert (tmp_path / "dest" / "index.parquet").exists()


def test_job_summary_prints_what_remote_reads_moved(screens):
    rows = _stage1_rows().to_pylist()
    rows[0].update(bytes_read=12_345_678, read_requests=42, skipped=False)
    rows[1].update(bytes_read=4096, read_requests=2, skipped=False)
    skipped = {**rows[0], "slide_id": "done-before", "skipped": True}  # read nothing now
    table = pa.Table.from_pylist([*rows, skipped])
    output.print_job_summary("stage 1", table, {LONG[0], LONG[1], "done-before"},
                             output.STAGE1_COLUMNS)  # fmt: skip
    text = screens[0].getvalue()
    _check_80(text)
    assert "read from remote slides: 12.3 MB in 44 requests (2 slide(s);" in text
    local = pa.Table.from_pylist(_stage1_rows().to_pylist())  # local files: nothing printed
    screens[0].truncate(0)
    output.print_job_summary("stage 1", local, set(LONG), output.STAGE1_COLUMNS)
    assert "read from remote" not in screens[0].getvalue()
