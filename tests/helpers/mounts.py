"""Real read-only and full output folders for write-error tests.

A small tmpfs is mounted (root with CAP_SYS_ADMIN, as in the project's containers); a full
disk is a tmpfs of a few kilobytes, a read-only one is remounted ``ro``. Where mounting is not
allowed, a read-only folder falls back to ``chmod 555`` (which binds non-root users only) and
a full one skips the test, saying why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` KiB mounted at ``path`` (skips the test when that is refused)."""
    path.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(path))
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def remount(path: Path, options: str) -> None:
    """``mount -o remount,<options>`` (e.g. ``ro``, ``rw,size=64m``)."""
    done = _mount("-o", f"remount,{options}", str(path))
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[Path]:
    """An empty folder nothing can be written to (a read-only tmpfs, else mode 555)."""
    if os.geteuid() != 0:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    with tmpfs(path, 64):
        remount(path, "ro")
        yield path
