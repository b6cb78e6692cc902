"""The input manifest: a CSV or Parquet table of slides with per-slide metadata.

One row per slide. ``url`` is required (a path, relative to the manifest's folder, or any URL;
a ``.dcm`` file stands for its DICOM series). Optional columns:

- ``mpp``: µm per level-0 pixel, used for that slide instead of what the file says (or does
  not say) and instead of ``--mpp``;
- ``slide_id``: the slide's id instead of the one derived from its URL (checked: letters,
  digits, ``.``, ``_``, ``-``; at most 100);
- ``annotations``: the slide's annotation file (GeoJSON or ASAP XML; a path relative to the
  manifest's folder, or any URL), used instead of a match in ``--annotations``;
- any other column is a label, carried into the job's table (``slides.parquet``) as is.

Every bad value raises :class:`~wsidist.errors.ConfigError` naming the row and the value,
before any slide is read.
"""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from wsidist import layout
from wsidist.errors import ConfigError
from wsidist.io.inputs import check_slide_id, expand_inputs
from wsidist.io.remote import local_path
from wsidist.io.storage import Store

URL, MPP, SLIDE_ID, ANNOTATIONS = "url", "mpp", "slide_id", "annotations"


@dataclass(frozen=True)
class ManifestRow:
    """One slide of a manifest: its URL and what the manifest says about it."""

    url: str
    slide_id: str | None = None
    mpp: float | None = None
    labels: dict[str, Any] = field(default_factory=dict, hash=False)
    annotation: str | None = None


def _read_table(path: str, storage_options: dict[str, Any]) -> pa.Table:
    lower = path.lower()
    try:
        with fsspec.open(path, "rb", **storage_options) as fh:
            if lower.endswith((".parquet", ".pq")):
                return pq.read_table(fh)
            if lower.endswith((".csv", ".tsv", ".txt")):
                import pyarrow.csv as pcsv

                delimiter = "\t" if lower.endswith(".tsv") else ","
                return pcsv.read_csv(fh, parse_options=pcsv.ParseOptions(delimiter=delimiter))
    except FileNotFoundError:
        raise ConfigError(f"manifest {path}: no such file") from None
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"manifest {path}: cannot read it: {exc}") from None
    raise ConfigError(f"manifest {path}: give a .csv, .tsv or .parquet file")


def _plain(column: pa.ChunkedArray) -> list[Any]:
    """Values JSON can carry: numbers, strings, booleans; anything else as text."""
    t = column.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return column.to_pylist()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return column.to_pylist()
    return column.cast(pa.string()).to_pylist()


def _resolve_url(raw: Any, base: str, row: int, path: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"manifest {path}, row {row}: url must be a path or URL, got {raw!r}")
    raw = raw.strip()
    local = local_path(raw)
    if local is None:
        return raw
    base_local = local_path(base)
    if base_local is None:  # a remote manifest: relative keys are under its prefix
        return raw if "://" in raw or raw.startswith("/") else posixpath.join(base, raw)
    full = os.path.abspath(os.path.join(base_local, local))
    if full.lower().endswith(".dcm") and os.path.isfile(full):
        return expand_inputs([full])[0]  # the URL of its DICOM series
    return full


def _annotation(raw: Any, base: str, where: str) -> str | None:
    """The row's annotation file (an empty cell: none), resolved like ``url``."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: annotations must be a path or URL, got {raw!r}")
    raw = raw.strip()
    local, base_local = local_path(raw), local_path(base)
    if local is None:
        return raw
    if base_local is None:
        return raw if raw.startswith("/") else posixpath.join(base, raw)
    return os.path.abspath(os.path.join(base_local, local))


def read_manifest(path: str, storage_options: dict[str, Any] | None = None) -> list[ManifestRow]:
    """The rows of a manifest, in file order. Raises :class:`ConfigError` on a bad value."""
    table = _read_table(path, storage_options or {})
    names = table.column_names
    if URL not in names:
        raise ConfigError(f"manifest {path} has no 'url' column (columns: {', '.join(names)})")
    base = posixpath.dirname(path) if "://" in path else os.path.dirname(os.path.abspath(path))
    columns = {n: _plain(table.column(n)) for n in names}
    labels = [n for n in names if n not in (URL, MPP, SLIDE_ID, ANNOTATIONS)]
    rows: list[ManifestRow] = []
    seen: dict[str, int] = {}
    for i in range(table.num_rows):
        where = f"manifest {path}, row {i + 1}"
        url = _resolve_url(columns[URL][i], base, i + 1, path)
        if url in seen:
            raise ConfigError(f"{where}: {url} is also row {seen[url]}")
        seen[url] = i + 1
        mpp = columns[MPP][i] if MPP in columns else None
        if mpp is not None and (
            isinstance(mpp, bool)
            or not isinstance(mpp, (int, float))
            or not math.isfinite(mpp)
            or mpp <= 0
        ):
            raise ConfigError(f"{where}: mpp must be a positive number of µm, got {mpp!r}")
        sid = columns[SLIDE_ID][i] if SLIDE_ID in columns else None
        if sid is not None and str(sid).strip() == "":
            sid = None  # an empty cell: the id from the URL
        if sid is not None:
            sid = check_slide_id(str(sid), where)
        rows.append(
            ManifestRow(
                url, sid, float(mpp) if mpp is not None else None,
                {n: columns[n][i] for n in labels},
                _annotation(columns.get(ANNOTATIONS, [None] * (i + 1))[i], base, where),
            )
        )  # fmt: skip
    if not rows:
        raise ConfigError(f"manifest {path} lists no slides")
    return rows


class _Labelled(Protocol):
    slide_id: str
    labels: dict[str, Any]


def _label_type(values: list[Any]) -> pa.DataType:
    try:
        typ = pa.array(values).type
    except (pa.ArrowException, TypeError, ValueError):
        return pa.string()
    return pa.string() if pa.types.is_null(typ) else typ


def stored_schema(store: Store, key: str) -> pa.Schema | None:
    """The schema of the table stored at ``key`` (its footer only), None when absent."""
    try:
        if not store.exists(key):
            return None
        with store.fs.open(store.path(key), "rb") as fh:
            return pq.read_schema(fh)
    except Exception:  # noqa: BLE001 — a damaged old table is replaced, not fatal
        return None


def labelled_schema(
    schema: pa.Schema, tasks: Sequence[_Labelled], stored: pa.Schema | None = None
) -> pa.Schema:
    """``schema`` plus the tasks' label columns and those an earlier run stored, so a merge
    keeps them. ConfigError when a label would replace one of the table's own columns."""
    names = list(dict.fromkeys(n for t in tasks for n in t.labels))
    clash = [n for n in names if n in schema.names]
    if clash:
        raise ConfigError(
            f"manifest column(s) {', '.join(clash)} would replace the table's own columns of "
            "the same name: rename them"
        )
    fields = list(schema)
    for name in names:
        typ = _label_type([t.labels.get(name) for t in tasks])
        if stored is not None and name in stored.names and stored.field(name).type != typ:
            typ = pa.string()
        fields.append(pa.field(name, typ))
    taken = {f.name for f in fields}
    taken.add(layout.STATUS_VERSION_COLUMN)  # written beside the rows, never one of them
    fields += [f for f in (stored or []) if f.name not in taken]
    return pa.schema(fields)


def with_labels(rows: list[dict[str, Any]], tasks: Sequence[_Labelled]) -> list[dict[str, Any]]:
    """Rows with their task's current labels (a skipped slide keeps no stale labels)."""
    labels = {t.slide_id: t.labels for t in tasks}
    return [{**row, **labels.get(row.get("slide_id"), {})} for row in rows]
