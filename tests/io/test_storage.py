"""Output keys cannot escape the root; writes are atomic and work on fsspec URLs."""

import pyarrow as pa
import pytest

from wsidist.errors import WsidistError
from wsidist.io.storage import Store, check_key


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/etc/passwd", "a//b", ".hidden", "a/b c", ""]
)
def test_unsafe_keys_are_refused(key):
    with pytest.raises(WsidistError, match="unsafe"):
        check_key(key)


def test_local_round_trip_leaves_no_temporaries(tmp_path):
    store = Store(str(tmp_path / "out"))
    store.write_bytes("masks/a.png", b"123")
    store.write_parquet("tiles/slide_id=a/part-0.parquet", pa.table({"x": [1, 2]}))
    assert store.read_bytes("masks/a.png") == b"123"
    assert store.read_parquet("tiles/slide_id=a/part-0.parquet").column("x").to_pylist() == [1, 2]
    assert store.list("masks") == ["masks/a.png"]
    assert not list((tmp_path / "out").rglob("_tmp-*"))
    store.write_bytes("masks/a.png", b"456")  # overwrite in place
    assert store.read_bytes("masks/a.png") == b"456"


def test_memory_filesystem_urls():
    store = Store("memory://wsidist-test/run")
    store.write_bytes("status/a.json", b"{}")
    assert store.exists("status/a.json")
    assert store.full_url("status/a.json") == "memory:///wsidist-test/run/status/a.json"


def test_concurrent_writers_do_not_trip_over_the_spool_folder(tmp_path):
    """Each write removes the emptied spool folder while others make it again: neither the
    mkdir that sees it vanish nor the write into a removed folder may fail a write."""
    import threading

    store = Store(str(tmp_path / "out"))
    errors: list[str] = []

    def writer(i: int) -> None:
        for k in range(200):
            try:
                store.write_bytes(f"w{i}/{k}.bin", b"x")
            except Exception as exc:  # noqa: BLE001 — the test collects every failure
                errors.append(repr(exc))
                return

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list((tmp_path / "out").rglob("*.bin"))) == 8 * 200
