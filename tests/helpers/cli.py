"""The ``wsidist`` command line run in this process: the same typer app ``python -m wsidist.cli``
runs, for commands that fail before any work starts (or need no cluster of their own). Each
command still has a subprocess run somewhere in the tests, as a user runs it."""

from __future__ import annotations

import os
import subprocess


def run_in_process(*args, cwd=None) -> subprocess.CompletedProcess:
    """``wsidist ARGS`` from ``cwd`` at 80 columns: its exit code, stdout and stderr. An
    exception other than the command's own exit fails the test (a user would see a traceback)."""
    from typer.testing import CliRunner

    from wsidist.cli.app import app

    argv = [str(a) for a in args]
    before = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, argv, env={"COLUMNS": "80"})
    finally:
        os.chdir(before)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.stdout + res.stderr, res.stderr
    return subprocess.CompletedProcess(argv, res.exit_code, res.stdout, res.stderr)
