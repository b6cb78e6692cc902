"""A ``--where`` sees the tile and slide columns only: no file or object outside the tile
tables can be read or listed through it, and it cannot run more statements. A real stage-1
output, locally and on the SeaweedFS S3 server, through the API and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers.paths import KIDNEY, REPO
from wsidist.errors import WsidistError
from wsidist.query.select import select
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1

TOKEN = "TOPSECRET-7f3a9c"


def _leaks(secret_url: str, secret_dir: str, written: str) -> dict[str, str]:
    """Where expressions that would show a file's text, a folder's listing, or write a file."""
    return {
        "read_text": f"score > (SELECT content FROM read_text('{secret_url}'))::DOUBLE",
        "read_csv": f"slide_id = (SELECT column0 FROM read_csv('{secret_url}', header=false))",
        "glob": f"score > (SELECT string_agg(file, ',') FROM glob('{secret_dir}/*'))::DOUBLE",
        "copy": f"true); COPY (SELECT 42) TO '{written}' (FORMAT csv); SELECT (1",
    }


def _check(out: str, leaks: dict[str, str], storage_options=None) -> None:
    for name, where in leaks.items():
        with pytest.raises(WsidistError) as err:
            select(out, where=where, storage_options=storage_options)
        message = str(err.value)
        assert TOKEN not in message, (name, message)
        if name == "glob":  # the listing would name the file; the query names the folder only
            assert "hidden-name" not in message, message
        assert "bad where expression" in message
    # the tile and slide columns still work, subqueries over them too
    ok = select(
        out,
        where="tissue_frac >= 0 AND slide_width > 0 AND "
        "score >= (SELECT min(score) FROM candidates)",
        storage_options=storage_options,
    )
    assert ok.num_rows > 0


@pytest.fixture(scope="module")
def local_out(client, real_slides_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    out = root / "out"
    run_stage1([str(KIDNEY)], str(out), Stage1Config(scale=16), client=client)
    secret = root / "private"
    secret.mkdir()
    (secret / "hidden-name.txt").write_text(TOKEN + "\n")
    return out, secret


def test_where_cannot_read_or_list_local_files(local_out):
    out, secret = local_out
    written = out.parent / "written.csv"
    inside = out / "tiles" / "written.csv"
    leaks = _leaks(str(secret / "hidden-name.txt"), str(secret), str(written))
    leaks["copy-inside"] = leaks["copy"].replace(str(written), str(inside))
    _check(str(out), leaks)
    assert not written.exists() and not inside.exists()


def test_cli_where_does_not_print_a_file(local_out):
    out, secret = local_out
    where = f"score > (SELECT content FROM read_text('{secret / 'hidden-name.txt'}'))::DOUBLE"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(
        [sys.executable, "-m", "wsidist.cli", "select", str(out), "--where", where],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2
    assert TOKEN not in res.stdout + res.stderr and "Traceback" not in res.stderr
    assert not (out / "selection.parquet").exists()


@pytest.mark.slow
def test_where_cannot_read_or_list_s3_objects(client, s3, s3_bucket, real_slides_dir):
    out = f"{s3_bucket}/run/out"
    opts = s3.storage_options
    run_stage1([str(KIDNEY)], out, Stage1Config(scale=16), client=client, storage_options=opts)
    fs = s3.filesystem()
    bucket = s3_bucket.removeprefix("s3://")
    other = s3.make_bucket(f"{bucket}-private")
    fs.pipe_file(f"{other.removeprefix('s3://')}/hidden-name.txt", TOKEN.encode())
    fs.pipe_file(f"{bucket}/run/hidden-name.txt", TOKEN.encode())  # beside the output
    for secret in (f"{other}/hidden-name.txt", f"{s3_bucket}/run/hidden-name.txt"):
        leaks = _leaks(secret, secret.rsplit("/", 1)[0], f"{s3_bucket}/run/written.csv")
        _check(out, leaks, storage_options=opts)
    assert not fs.exists(f"{bucket}/run/written.csv")
