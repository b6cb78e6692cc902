"""``wsidist infer`` and ``wsidist stain-fit`` from the command line, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from wsidist import layout
from wsidist.infer.config import build_infer_job
from wsidist.infer.models import check_model_spec

REPO = Path(__file__).resolve().parents[2]


def wsidist(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "wsidist.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


@pytest.mark.long  # the README test runs infer and stain-fit as written
def test_infer_and_stain_fit_commands(dark_slides, darkness_onnx, tmp_path):
    ref = tmp_path / "ref.json"
    done = wsidist("stain-fit", str(dark_slides[1].path), "--to", str(ref), "--patches", "4")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    done = wsidist(
        "infer", str(dark_slides[0].path), "--model", str(darkness_onnx), "--model",
        "tests.infer.models:darkness", "--out", str(out), "--patch-um", "256", "--overlap",
        "0.25", "--tta", "flip", "--normalize", str(ref), "--workers", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "dark_a" in done.stdout and "ok" in done.stdout
    row = pq.read_table(out / layout.INFERENCE_TABLE).to_pylist()[0]
    assert row["models"] == 2 and row["augmentations"] == 3 and row["input_px"] == 512
    assert row["stride_px0"] == 384
    assert (out / layout.predictions_key("dark_a")).exists()


def test_bad_arguments_fail_before_any_work(dark_slides, tmp_path):
    slide = str(dark_slides[0].path)
    cases = [
        (["--model", "missing.onnx"], "model file not found"),
        ([], "no model given"),
        (["--model", "tests.infer.models:darkness", "--overlap", "1.5"], "overlap"),
        (["--model", "tests.infer.models:darkness", "--tta", "spin"], "unknown augmentation"),
        (["--model", "tests.infer.models:darkness", "--patch-px", "256", "--patch-um", "100"],
         "patch_px or patch_um"),
    ]  # fmt: skip
    from typer.testing import CliRunner

    from wsidist.cli.app import app

    runner = CliRunner()
    for args, message in cases:  # in process: these fail before a cluster starts
        done = runner.invoke(app, ["infer", slide, "--out", str(tmp_path / "o"), *args])
        assert done.exit_code == 2, (args, done.output)
        assert message in " ".join(done.output.split()) and done.exception.__class__ is SystemExit
    assert not (tmp_path / "o").exists()
    done = wsidist("infer", slide, "--out", str(tmp_path / "o"), "--tta", "spin", "--model", "x:y")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_shipped_job_file_is_valid():
    job = build_infer_job(REPO / "jobs" / "infer.yaml")
    assert job.config.tta == ("flip", "rot90") and job.config.patch_um == 256
    assert [check_model_spec(m) for m in job.config.models] == ["python", "python"]
