"""TLS between client, scheduler and workers, with certificates made here (cryptography): a
job runs over tls://, and a client without the certificate (or with one from another CA) is
refused with a clear error."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from distributed import Client

from tests.deploy.k8s import _wait_for_port
from tests.helpers.cli import run_in_process
from tests.helpers.s3server import free_ports
from wsidist.runtime.cluster import dask_client, tls_security

BIN = Path(sys.executable).parent


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(folder: Path, tag: str) -> dict[str, str]:
    """A CA and a key pair it signed (for localhost / 127.0.0.1, server and client use)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name(f"{tag} CA")).issuer_name(_name(f"{tag} CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = {
        "ca": folder / f"{tag}-ca.pem",
        "cert": folder / f"{tag}-cert.pem",
        "key": folder / f"{tag}-key.pem",
    }
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    """A TLS-only scheduler and one worker started with Dask's own commands."""
    folder = tmp_path_factory.mktemp("tls")
    pki, rogue = make_pki(folder, "good"), make_pki(folder, "rogue")
    (port,) = free_ports(1)
    tls = ["--tls-ca-file", pki["ca"], "--tls-cert", pki["cert"], "--tls-key", pki["key"]]
    address = f"tls://127.0.0.1:{port}"
    logs = [open(folder / name, "wb") for name in ("scheduler.log", "worker.log")]  # noqa: SIM115
    procs = [
        subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                          "--dashboard-address", "127.0.0.1:0", "--protocol", "tls", *tls],
                         stdout=logs[0], stderr=subprocess.STDOUT),
    ]  # fmt: skip
    try:
        _wait_for_port(port)
        procs.append(subprocess.Popen(
            [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--host", "127.0.0.1", *tls],
            stdout=logs[1], stderr=subprocess.STDOUT))  # fmt: skip
        with Client(address, security=tls_security(pki["ca"], pki["cert"], pki["key"])) as c:
            c.wait_for_workers(1, timeout=90)
        yield address, pki, rogue
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
        for f in logs:
            f.close()


def _connect(address: str, security=None) -> None:
    """Open one comm to ``address`` as a client would, with ``security``'s client settings."""
    from distributed.comm import connect

    async def go() -> None:
        kwargs = security.get_connection_args("client") if security is not None else {}
        comm = await connect(address, timeout="10s", **kwargs)
        await comm.close()

    asyncio.run(go())


def test_client_without_the_certificate_is_refused(tls_cluster):
    address, pki, rogue = tls_cluster
    _connect(address, tls_security(pki["ca"], pki["cert"], pki["key"]))  # the CA's own: accepted
    with pytest.raises(TypeError, match="TLS"):  # no certificate at all: Dask refuses to try
        _connect(address)
    with pytest.raises((OSError, TimeoutError)):  # a certificate from another CA
        _connect(address, tls_security(rogue["ca"], rogue["cert"], rogue["key"]))
    with pytest.raises((OSError, TimeoutError)):  # plain TCP to a TLS scheduler
        _connect(address.replace("tls://", "tcp://"))


def _wsidist(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "wsidist"), *args], capture_output=True, text=True, timeout=300
    )


def test_job_over_tls(tls_cluster, synthetic_slides, tmp_path):
    address, pki, _ = tls_cluster
    out = tmp_path / "out"
    slide = str(synthetic_slides[0].path)
    done = _wsidist("score", slide, "--out", str(out), "--scheduler", address, "--tls-ca", pki["ca"],
                    "--tls-cert", pki["cert"], "--tls-key", pki["key"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out / "slides.parquet")
    assert table.column("status").to_pylist() == ["ok"]

    refused = _wsidist("score", slide, "--out", str(tmp_path / "o2"), "--scheduler", address)
    assert refused.returncode == 2
    assert "cannot connect to the Dask scheduler" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_tls_options_are_checked_before_work(tls_cluster, synthetic_slides, tmp_path):
    """The first through the console script, the others in this process (the same typer app;
    they fail before any connection or work)."""
    address, pki, _ = tls_cluster
    slide = str(synthetic_slides[0].path)
    half = _wsidist("score", slide, "--out", str(tmp_path / "o"), "--tls-ca", pki["ca"])
    assert half.returncode == 2 and "missing tls_cert, tls_key" in half.stderr
    plain = run_in_process("score", slide, "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1",
                           "--tls-ca", pki["ca"], "--tls-cert", pki["cert"], "--tls-key", pki["key"])  # fmt: skip
    assert plain.returncode == 2 and "is not tls://" in plain.stderr
    missing = run_in_process("score", slide, "--out", str(tmp_path / "o"), "--tls-ca", str(tmp_path / "no.pem"),
                             "--tls-cert", pki["cert"], "--tls-key", pki["key"])  # fmt: skip
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert not (tmp_path / "o").exists()


def test_local_cluster_over_tls(tls_cluster):
    _, pki, _ = tls_cluster
    with dask_client(workers=1, security=tls_security(pki["ca"], pki["cert"], pki["key"])) as c:
        assert c.scheduler.address.startswith("tls://")
        assert c.submit(sum, [1, 2]).result() == 3
