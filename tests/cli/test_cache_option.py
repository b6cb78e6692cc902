"""--cache-max-gb: a bad bound stops the command before any slide is read, naming the value."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from wsidist.cli.app import app

RUNNER = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["score", "missing.svs", "--out", "OUT", "--cache-max-gb", "0"],
        ["rewrite", "missing.svs", "--out", "OUT", "--cache-max-gb", "-1"],
        ["top-tiles", "missing.svs", "--out", "OUT", "--cache-max-gb", "0"],
        ["extract", "sel.parquet", "--to", "OUT", "--cache-max-gb", "0"],
    ],
)
def test_a_bad_cache_bound_is_refused_first(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = RUNNER.invoke(app, args, env={"COLUMNS": "120"})
    assert res.exit_code == 2, res.output
    assert "cache" in res.output and ("0" in res.output or "-1" in res.output)
    assert not (tmp_path / "OUT").exists()
