"""Read the tar shards ``wsidist extract --shard-mb`` writes (local or ``s3://``), streaming.

Members are grouped into samples by key, WebDataset style: consecutive members with the same
name up to the extension (``<slide>_x<x>_y<y>_l<level>.png`` and, when present, its
``.json``). A sample is ``(patch, record)``: the decoded image (uint8 RGB) and its JSON
member's fields, or, without one, the slide id, box origin and level parsed from the key. With
torch installed it is a ``torch.utils.data.IterableDataset`` and DataLoader workers take the
shards round-robin.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image

from wsidist.data.datasets import _IterBase
from wsidist.errors import ConfigError

__all__ = ["TarShardDataset"]

IMAGE_EXT = ("png", "jpg", "jpeg", "webp")
_KEY = re.compile(r"^(?P<slide_id>.+)_x(?P<x>\d+)_y(?P<y>\d+)_l(?P<level>\d+)$")


def _key_fields(key: str) -> dict[str, Any]:
    match = _KEY.match(key.rsplit("/", 1)[-1])
    if not match:
        return {}
    d = match.groupdict()
    return {"slide_id": d["slide_id"], "x": int(d["x"]), "y": int(d["y"]),
            "level": int(d["level"])}  # fmt: skip


class TarShardDataset(_IterBase):
    """Samples of tar shards: ``TarShardDataset(urls)`` or ``TarShardDataset.from_index(dest)``."""

    def __init__(self, shards: Sequence[str], *, transform=None, decode: bool = True,
                 storage_options: dict[str, Any] | None = None) -> None:  # fmt: skip
        if isinstance(shards, str):
            shards = [shards]
        if not shards:
            raise ConfigError("no tar shards given")
        self.shards = list(shards)
        self.transform = transform
        self.decode = decode
        self.storage_options = storage_options or {}
        self._share: tuple[int, int] | None = None

    @classmethod
    def from_index(cls, dest: str, **kwargs: Any) -> TarShardDataset:
        """The shards listed in ``dest/index.parquet`` (rows of kind ``shard`` not failed)."""
        from wsidist import layout
        from wsidist.io.storage import Store

        root = dest.rstrip("/")
        store = Store(root, kwargs.get("storage_options") or {})
        if not store.exists(layout.PATCH_INDEX):
            raise ConfigError(f"no {layout.PATCH_INDEX} under {dest}")
        index = store.read_parquet(layout.PATCH_INDEX).to_pylist()
        keys = sorted({r["key"] for r in index if r["kind"] == "shard" and r["status"] != "failed"})
        if not keys:
            raise ConfigError(f"{dest}: the index lists no tar shard")
        return cls([store.full_url(k) for k in keys], **kwargs)

    def shard(self, worker: int, workers: int) -> TarShardDataset:
        """Restrict iteration to worker ``worker`` of ``workers`` (for your own processes)."""
        self._share = (worker, workers)
        return self

    def _my_shards(self) -> list[str]:
        worker, workers = self._share or (0, 1)
        if self._share is None and _IterBase is not object:
            from torch.utils.data import get_worker_info

            info = get_worker_info()
            if info is not None:
                worker, workers = info.id, info.num_workers
        return self.shards[worker::workers]

    def __iter__(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        for url in self._my_shards():
            for key, members in self._samples(url):
                yield self._sample(url, key, members)

    def _samples(self, url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
        import fsspec

        key, members = None, {}
        with fsspec.open(url, "rb", **self.storage_options) as fh, tarfile.open(
            fileobj=fh, mode="r|"
        ) as tar:  # fmt: skip
            for info in tar:
                if not info.isfile():
                    continue
                stem, _, ext = info.name.rpartition(".")
                if stem != key and members:
                    yield key, members
                    members = {}
                key = stem
                members[ext.lower()] = tar.extractfile(info).read()
        if members:
            yield key, members

    def _sample(self, url: str, key: str, members: dict[str, bytes]) -> tuple[Any, dict]:
        ext = next((e for e in IMAGE_EXT if e in members), None)
        if ext is None:
            raise ConfigError(f"{url}: sample {key!r} has no image member ({', '.join(members)})")
        record: dict[str, Any] = {"key": key, "shard": url, **_key_fields(key)}
        if "json" in members:
            record.update(json.loads(members["json"]))
        data = members[ext]
        if not self.decode:
            return data, record
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        return (self.transform(rgb) if self.transform else rgb), record
