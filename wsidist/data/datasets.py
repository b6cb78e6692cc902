"""Training datasets that read patches straight from the slides (local or ``s3://``).

- :class:`TileDataset` is map-style: item ``i`` is ``(patch, record)`` for row ``i`` of a
  selection (``slide_id, url, x, y, w, h`` and any other columns), read through
  :func:`wsidist.io.patch.read_patch`, so it equals what ``wsidist extract`` writes for the box.
- :class:`SlideTileDataset` is iterable: it walks the selection slide by slide (patches in row
  order of the slide, top to bottom), opening each slide once; DataLoader workers share the
  slides round-robin.

Slides are opened lazily in the process that reads them and kept open (at most ``max_open``);
after a fork (DataLoader workers) a process never touches its parent's handles, it opens its
own. With torch installed the classes are ``torch.utils.data.Dataset`` / ``IterableDataset``;
without it they work the same with plain loops or multiprocessing.
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wsidist.errors import ConfigError
from wsidist.io.patch import PatchSpec, read_patch
from wsidist.io.remote import CacheSpec
from wsidist.io.slide import Slide, open_slide

__all__ = ["SlideCache", "SlideTileDataset", "TileDataset", "load_selection"]

REQUIRED = ("slide_id", "url", "x", "y", "w", "h")

if importlib.util.find_spec("torch") is not None:
    from torch.utils.data import Dataset as _MapBase
    from torch.utils.data import IterableDataset as _IterBase
else:  # the same classes, without torch
    _MapBase = _IterBase = object


class SlideCache:
    """The slides open in this process, least recently used closed past ``max_open``.

    Handles opened before a fork are left alone in the child (never read, never closed: they
    belong to the parent); the child opens its own. Pickling carries no handle.
    """

    def __init__(self, max_open: int = 8, cache_dir: str | CacheSpec | None = None) -> None:
        self.max_open = max(1, int(max_open))
        self.cache_dir = cache_dir
        self._pid = os.getpid()
        self._open: OrderedDict[str, Slide] = OrderedDict()
        self._inherited: list[Slide] = []

    def get(self, url: str) -> Slide:
        if os.getpid() != self._pid:
            self._inherited += list(self._open.values())
            self._open = OrderedDict()
            self._pid = os.getpid()
        slide = self._open.pop(url, None) or open_slide(url, cache_dir=self.cache_dir)
        self._open[url] = slide
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)[1].close()
        return slide

    def close(self) -> None:
        if os.getpid() == self._pid:
            for slide in self._open.values():
                slide.close()
        self._open = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open, "cache_dir": self.cache_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)


def load_selection(selection, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """A selection as a table (a path/URL of a Parquet file, a table or a list of dicts), its
    nulls filled (NaN for numbers, "" for text) so records collate into batches."""
    if isinstance(selection, str | os.PathLike):
        import fsspec

        try:
            with fsspec.open(str(selection), "rb", **(storage_options or {})) as fh:
                selection = pq.read_table(fh)
        except FileNotFoundError:
            raise ConfigError(f"selection not found: {selection}") from None
    elif isinstance(selection, list):
        selection = pa.Table.from_pylist(selection)
    missing = [c for c in REQUIRED if c not in selection.column_names]
    if missing:
        raise ConfigError(f"selection lacks column(s) {', '.join(missing)} "
                          f"(has {', '.join(selection.column_names)})")  # fmt: skip
    columns = {}
    for name in selection.column_names:
        col = selection.column(name)
        if col.null_count:
            if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
                col = pc.fill_null(col.cast(pa.float64()), float("nan"))
            elif pa.types.is_string(col.type):
                col = pc.fill_null(col, "")
        columns[name] = col
    return pa.table(columns)


def _spec(level: int | None, mpp: float | None, size: int | None) -> PatchSpec:
    return PatchSpec(level=None if mpp is not None else (level or 0), mpp=mpp, size=size)


def _normalizer(normalizer) -> Callable[[np.ndarray], np.ndarray] | None:
    if normalizer is None or callable(normalizer):
        return normalizer
    from wsidist.imaging.stain import StainNormalizer

    return StainNormalizer.load(normalizer)


class _Reader:
    """What both datasets share: the table, how to read, the open slides."""

    def __init__(self, selection, level, mpp, size, transform, normalizer, storage_options,
                 cache_dir, max_open) -> None:  # fmt: skip
        self.table = load_selection(selection, storage_options)
        self.spec = _spec(level, mpp, size)
        self.transform = transform
        self.normalizer = _normalizer(normalizer)
        self.slides = SlideCache(max_open, cache_dir)
        self._columns = self.table.to_pydict() if self.table.num_rows <= 1_000_000 else None

    def record(self, i: int) -> dict[str, Any]:
        if self._columns is not None:
            return {k: v[i] for k, v in self._columns.items()}
        return self.table.slice(i, 1).to_pylist()[0]

    def item(self, i: int, slide: Slide | None = None) -> tuple[Any, dict[str, Any]]:
        rec = self.record(i)
        slide = slide or self.slides.get(rec["url"])
        rgb, level, mpp = read_patch(
            slide, int(rec["x"]), int(rec["y"]), int(rec["w"]), int(rec["h"]), self.spec
        )
        if self.normalizer is not None:
            rgb = self.normalizer(rgb)
        rec.update(index=i, read_level=level, read_mpp=float("nan") if mpp is None else mpp)
        return (self.transform(rgb) if self.transform else rgb), rec


class TileDataset(_MapBase):
    """Map-style dataset of a selection's patches: ``(patch, record)`` per row.

    ``level`` or ``mpp`` (µm per output px) say how boxes are read and ``size`` resizes them,
    as in ``wsidist extract``; ``normalizer`` (a :class:`~wsidist.imaging.stain.StainNormalizer`,
    its JSON path or any callable) maps the uint8 patch first, then ``transform``.
    """

    def __init__(self, selection, *, level: int | None = None, mpp: float | None = None,
                 size: int | None = None, transform=None, normalizer=None,
                 storage_options: dict[str, Any] | None = None, cache_dir: str | CacheSpec | None = None,
                 max_open: int = 8) -> None:  # fmt: skip
        self._reader = _Reader(selection, level, mpp, size, transform, normalizer,
                               storage_options, cache_dir, max_open)  # fmt: skip

    def __len__(self) -> int:
        return self._reader.table.num_rows

    def __getitem__(self, i: int) -> tuple[Any, dict[str, Any]]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} patches")
        return self._reader.item(int(i) % n)

    def record(self, i: int) -> dict[str, Any]:
        return self._reader.record(i)

    def close(self) -> None:
        self._reader.slides.close()


class SlideTileDataset(_IterBase):
    """Iterable dataset of a selection's patches, slide by slide (each slide opened once).

    With torch, DataLoader workers take slides round-robin; without it, :meth:`shard` gives
    worker ``k`` of ``n`` its share.
    """

    def __init__(self, selection, *, level: int | None = None, mpp: float | None = None,
                 size: int | None = None, transform=None, normalizer=None,
                 storage_options: dict[str, Any] | None = None, cache_dir: str | CacheSpec | None = None,
                 ) -> None:  # fmt: skip
        self._reader = _Reader(selection, level, mpp, size, transform, normalizer,
                               storage_options, cache_dir, 1)  # fmt: skip
        ids = self._reader.table.column("slide_id").to_pylist()
        ys = self._reader.table.column("y").to_pylist()
        xs = self._reader.table.column("x").to_pylist()
        groups: dict[str, list[int]] = {}
        for i, sid in enumerate(ids):
            groups.setdefault(sid, []).append(i)
        self.groups = {
            sid: sorted(rows, key=lambda r: (ys[r], xs[r])) for sid, rows in groups.items()
        }
        self._share: tuple[int, int] | None = None

    def __len__(self) -> int:
        return self._reader.table.num_rows

    def shard(self, worker: int, workers: int) -> SlideTileDataset:
        """Restrict iteration to worker ``worker`` of ``workers`` (for your own processes)."""
        if not 0 <= worker < workers:
            raise ValueError(f"worker {worker} is not in 0..{workers - 1}")
        self._share = (worker, workers)
        return self

    def _my_slides(self) -> list[str]:
        worker, workers = self._share or (0, 1)
        if self._share is None and _IterBase is not object:
            from torch.utils.data import get_worker_info

            info = get_worker_info()
            if info is not None:
                worker, workers = info.id, info.num_workers
        return list(self.groups)[worker::workers]

    def __iter__(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        for sid in self._my_slides():
            rows = self.groups[sid]
            with open_slide(self._reader.record(rows[0])["url"],
                            cache_dir=self._reader.slides.cache_dir) as slide:  # fmt: skip
                for i in rows:
                    yield self._reader.item(i, slide)
