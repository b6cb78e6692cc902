"""A small thread-safe LRU cache of decoded tiles, bounded in bytes (one per open slide)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable

import numpy as np

DEFAULT_CACHE_BYTES = 64 * 2**20


class TileCache:
    """Decoded tiles (or None for an empty tile) by key, least recently used evicted first.

    The newest entry is always kept, even when it alone exceeds ``max_bytes``.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, np.ndarray | None] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def lookup(self, keys: Iterable[Hashable]) -> dict[Hashable, np.ndarray | None]:
        """The cached entries among ``keys`` (each marked as just used)."""
        found = {}
        with self._lock:
            for key in keys:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    found[key] = self._entries[key]
        return found

    def store(self, items: dict[Hashable, np.ndarray | None]) -> None:
        """Add decoded tiles, then evict the least recently used beyond the byte budget."""
        with self._lock:
            for key, arr in items.items():
                if key in self._entries:
                    continue
                self._entries[key] = arr
                self._bytes += 0 if arr is None else arr.nbytes
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, old = self._entries.popitem(last=False)
                self._bytes -= 0 if old is None else old.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
