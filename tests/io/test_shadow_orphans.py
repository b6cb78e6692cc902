"""A killed worker's sparse shadow folder (``$TMPDIR/wsidist-range-*``) is removed by the next
process that opens a range-read slide; a live process's shadow is kept."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile

from wsidist.demo.spec import SynthSpec
from wsidist.demo.synth import write_synthetic_slide
from wsidist.io.remote_range import SHADOW_PREFIX
from wsidist.io.slide import open_slide

_KILLED = """
import os, signal, sys
from wsidist.io.slide import open_slide
slide = open_slide(sys.argv[1])
assert slide.remote_read == "range"
print("open", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _shadows(root) -> set[str]:
    return {p.name for p in root.iterdir() if p.name.startswith(SHADOW_PREFIX)}


def test_a_killed_workers_shadow_is_removed_and_a_live_one_kept(s3, tmp_path, monkeypatch):
    slide = tmp_path / "s.svs"
    write_synthetic_slide(slide, SynthSpec(width=1200, height=900, seed=4))
    url = f"{s3.make_bucket(f'shadow-{secrets.token_hex(4)}')}/s.svs"
    s3.filesystem().put_file(str(slide), url)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with open_slide(url) as live:  # this process's shadow, open while another process sweeps
        assert live.remote_read == "range"
        (mine,) = _shadows(scratch)
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED, url], env={**os.environ, "TMPDIR": str(scratch)},
            capture_output=True, text=True,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL and "open" in killed.stdout
        (orphan,) = _shadows(scratch) - {mine}  # left behind by the killed process
        with open_slide(url) as again:  # opening sweeps: the orphan goes, live ones stay
            assert again.remote_read == "range"
            left = _shadows(scratch)
            assert orphan not in left and mine in left and len(left) == 2
    assert _shadows(scratch) == set()
