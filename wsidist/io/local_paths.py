"""Local slide paths: what a path must be before a reader opens it, and why one is refused."""

from __future__ import annotations

import errno
import os

from wsidist.errors import SlideError
from wsidist.io.dicom_series import dcm_files, group_series, read_header, readable

__all__ = ["resolve_local", "sniff"]


def resolve_local(path: str) -> str:
    """Existence checks; a DICOM series folder resolves to its series' main file."""
    if os.path.isdir(path):
        headers = [read_header(f) for f in dcm_files(os.listdir(path), path, os.path.join)]
        series = readable(group_series(headers))
        if not series:
            raise SlideError(
                f"{path}: a directory without readable DICOM (.dcm) files is not a slide"
            )
        if len(series) > 1:
            raise SlideError(
                f"{path}: the folder holds {len(series)} DICOM series: give one file of the "
                "series to open (or the folder itself to a job, which lists each series)"
            )
        return series[0].main
    if os.path.islink(path) and not os.path.exists(path):
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SlideError(f"{path}: symbolic link loop") from None
        raise SlideError(f"{path}: dangling symbolic link (to {os.readlink(path)})")
    if not os.path.exists(path):
        raise SlideError(f"slide not found: {path}")
    if os.path.getsize(path) == 0:
        raise SlideError(f"{path}: empty file")
    return path


def sniff(path: str) -> str:
    """Why a local file that no reader opened is not a slide: its first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        return f"cannot read it: {exc}"
    return f"not recognised by OpenSlide and not a TIFF (starts with {head!r})"
