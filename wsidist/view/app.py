"""Build the viewer for a stage-1 output or slide folders, and run it with uvicorn."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence

from starlette.applications import Starlette

from wsidist import layout
from wsidist.errors import ConfigError
from wsidist.io.remote import CacheSpec
from wsidist.view.cache import ByteLRU
from wsidist.view.catalog import build_catalog
from wsidist.view.server import OpenSlides, Viewer, create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_CACHE_MB = 256


def make_viewer(
    targets: Sequence[str],
    *,
    cache_mb: float = DEFAULT_CACHE_MB,
    cache_dir: str | CacheSpec | None = None,
    jpeg_quality: int = 85,
) -> tuple[Viewer, Starlette]:
    """The viewer state and its app for ``targets`` (one OUT, or slide files and folders)."""
    catalog = build_catalog(list(targets))
    rows = {}
    if catalog.out is not None:
        table = catalog.out.read_parquet(layout.SLIDES_TABLE)
        rows = {r["slide_id"]: r for r in table.to_pylist() if r.get("slide_id")}
    viewer = Viewer(
        catalog,
        ByteLRU(int(cache_mb * 2**20)),
        OpenSlides(cache_dir=cache_dir),
        jpeg_quality=jpeg_quality,
        rows=rows,
    )
    return viewer, create_app(viewer)


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening socket on ``host:port`` (``port=0``: a free port; ``getsockname()`` tells
    which); ConfigError, naming the address, when it is taken or cannot be bound."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections wait from now on, before the app has started
    except OSError as exc:
        sock.close()
        hint = " (give another --port, or --port 0 for a free one)" if port else ""
        raise ConfigError(f"cannot bind {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def serve(app: Starlette, sock: socket.socket) -> None:
    """Run ``app`` on the bound socket ``sock`` (from :func:`bind`) until interrupted."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


@contextlib.contextmanager
def running(app: Starlette, host: str = DEFAULT_HOST, port: int = 0) -> Iterator[str]:
    """Run ``app`` in a background thread; yields its base URL (``port=0``: a free port)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           access_log=False, lifespan="off"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the viewer did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
