"""Every README example runs as written, in README order, and does what the README says.

A fresh folder stands in for the repository root (``jobs/`` and ``../shared/data/slides``
linked in, ``wsidist`` on PATH). Shell lines run through bash (globs, quotes and comments as a
user's shell has them) after the set-up block's ``wsidist demo --out demo-out``; each command
is parsed by the CLI itself (a documented option that does not exist fails) and its documented
outputs are checked (a path that is not written fails). ``s3://bucket`` and
``tcp://host:8786`` are a real S3 server's bucket and a real scheduler. The local ``score``,
``rewrite``, ``infer``, ``extract`` and ``report`` examples get ``--scheduler`` of one
LocalCluster for the module (started as wsidist starts its own, in a process whose working
directory is the stand-in root); ``demo``, the ``# LocalCluster`` line and the Python example
start their own. Python blocks run as
scripts, the SQL block with DuckDB, the filter-spec block through the spec parser. Examples on
the real slides, S3 or a scheduler are parsed always and run with ``WSIDIST_SLOW=1``.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import math
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import duckdb
import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from tests.helpers.paths import REPO, SLIDES

README = REPO / "README.md"
SHELL_LANGS = ("bash", "sh", "shell", "console")


@dataclass(frozen=True)
class Step:
    kind: str  # shell | python | sql | spec
    text: str
    line: int

    @property
    def id(self) -> str:
        head = self.text.strip().splitlines()[0][:70]
        return f"L{self.line}:{self.kind}:{head}"


def readme_steps() -> list[Step]:
    text = README.read_text()
    steps = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        lang, body = m.group(1), m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        if lang in SHELL_LANGS:
            for raw in body.splitlines():
                for part in raw.split(" && "):
                    cmd = part.strip()
                    if cmd.startswith("wsidist"):  # pip install and pytest are CI's own steps
                        steps.append(Step("shell", cmd, line))
        elif lang in ("python", "sql"):
            steps.append(Step(lang, body, line))
        elif lang == "" and "|>" in body:
            steps.append(Step("spec", body, line))
    return steps


STEPS = readme_steps()


# commands that take --scheduler; the README examples of these run on one shared LocalCluster
SHARED_CLUSTER = ("score", "rewrite", "infer", "extract", "report")
CLUSTER_SCRIPT = """import sys

from wsidist.runtime.cluster import dask_client

if __name__ == "__main__":
    with dask_client(workers=2) as client:
        print(client.scheduler.address, flush=True)
        sys.stdin.read()  # until the test closes it
"""


def _stop_cluster(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Workdir:
    """The stand-in repository root, and the remote things some examples name."""

    def __init__(self, root: Path):
        self.root = root
        self.bin = root.parent / "bin"
        self.bin.mkdir()
        shim = self.bin / "wsidist"
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m wsidist.cli "$@"\n')
        shim.chmod(0o755)
        (root / "jobs").symlink_to(REPO / "jobs")
        if SLIDES.is_dir():
            (root.parent / "shared" / "data").mkdir(parents=True)
            (root.parent / "shared" / "data" / "slides").symlink_to(SLIDES)
        self.env = {
            **os.environ,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(REPO),
            "COLUMNS": "80",
        }
        self.subs: dict[str, str] = {}
        self.scheduler: str | None = None
        self.stack = contextlib.ExitStack()

    def remote(self, request, text: str) -> str:
        """``text`` with the README's placeholders replaced by a real bucket / scheduler."""
        if "s3://bucket" in text and "s3://bucket" not in self.subs:
            s3 = request.getfixturevalue("s3")
            bucket = s3.make_bucket("readme")
            fs = s3.filesystem()
            for p in sorted((self.root / "demo-out" / "demo-slides").iterdir()):
                fs.put_file(str(p), f"{bucket[5:]}/slides/{p.name}")
            self.env.update(s3.env)
            self.subs["s3://bucket"] = bucket
        if "tcp://host:8786" in text and "tcp://host:8786" not in self.subs:
            request.getfixturevalue("s3")  # workers must see the S3 server's environment
            from wsidist.runtime.cluster import dask_client

            client = self.stack.enter_context(dask_client(workers=2))
            self.subs["tcp://host:8786"] = client.scheduler.address
        for placeholder, real in self.subs.items():
            text = text.replace(placeholder, real)
        return text

    def on_shared_cluster(self, cmd: str) -> str:
        """``cmd`` with ``--scheduler`` of the module's one LocalCluster, for local commands
        that take it and do not say they start their own (``# LocalCluster``; ``demo`` and the
        Python example start theirs): a cluster start per example costs its worker processes'
        start-up and proves nothing new."""
        words = shlex.split(cmd, comments=True)
        own = "--scheduler" in words or "LocalCluster" in cmd or "://" in cmd  # S3: its env
        if words[1] not in SHARED_CLUSTER or own:
            return cmd
        head, sep, comment = cmd.partition("   #")
        return f"{head.rstrip()} --scheduler {self.shared_scheduler()}{sep}{comment}"

    def shared_scheduler(self) -> str:
        """The address of a LocalCluster (2 worker processes) started as wsidist starts its
        own, in a process of its own whose working directory is the stand-in root."""
        if self.scheduler is None:
            script = self.root.parent / "shared_cluster.py"
            script.write_text(CLUSTER_SCRIPT)
            proc = subprocess.Popen(
                [sys.executable, str(script)], cwd=self.root, env=self.env, text=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
            self.stack.callback(_stop_cluster, proc)
            line = proc.stdout.readline().strip()
            assert line.startswith("tcp://"), f"the shared cluster did not start: {line!r}"
            self.scheduler = line
        return self.scheduler

    def run_shell(self, cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", cmd], cwd=self.root, env=self.env, capture_output=True, text=True,
            timeout=900,
        )  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme") / "repo"
    root.mkdir()
    wd = Workdir(root)
    with wd.stack:
        yield wd


# -- what a command says it writes -------------------------------------------------------------
def parse(argv: list[str]) -> tuple[str, dict]:
    """The command name and its parsed parameters, as the CLI parses them (unknown options and
    bad values fail here, as they would for the user)."""
    import click
    from typer.main import get_command

    from wsidist.cli.app import app

    group = get_command(app)
    name, rest = argv[0], argv[1:]
    assert name in group.commands, f"README names an unknown command {name!r}"
    command = group.commands[name]
    if hasattr(command, "commands"):  # a sub-app (``rails fit``): its command's words
        assert rest and rest[0] in command.commands, f"README names an unknown {name} command"
        command, rest = command.commands[rest[0]], rest[1:]
        name = f"{name} {command.name}"
    try:
        ctx = command.make_context(name, list(rest))
    except click.UsageError as exc:
        pytest.fail(f"`wsidist {shlex.join(argv)}`: {exc.format_message()}")
    return name, ctx.params


def _words(wd: Workdir, cmd: str) -> list[str]:
    """The command's words after ``wsidist``, local globs expanded as bash expands them."""
    words = []
    for w in shlex.split(cmd, comments=True)[1:]:
        hits = sorted(glob.glob(w, root_dir=wd.root)) if "*" in w and "://" not in w else []
        words.extend(hits or [w])
    return words


def _fs(wd: Workdir, url: str):
    path = url if "://" in url else str(wd.root / url)
    fs, root = fsspec.core.url_to_fs(path)
    return fs, root.rstrip("/")


def _table(wd: Workdir, url: str):
    fs, path = _fs(wd, url)
    assert fs.exists(path), f"{url} was not written"
    with fs.open(path, "rb") as fh:
        return pq.read_table(fh)


def _job_fields(params: dict) -> dict:
    """The job file's fields (its path is relative to the stand-in root)."""
    config = params.get("config")
    return yaml.safe_load((params["_root"] / config).read_text()) if config else {}


def _inputs(params: dict) -> list[str]:
    return list(params.get("slides") or _job_fields(params).get("inputs") or [])


def _expanded(wd: Workdir, inputs: list[str]) -> list[str]:
    """The slide URLs ``inputs`` stand for, as the CLI expands them from the stand-in root."""
    from wsidist.io.inputs import expand_inputs

    cwd = os.getcwd()
    os.chdir(wd.root)
    try:
        return list(expand_inputs(list(inputs)))
    finally:
        os.chdir(cwd)


def _planned(wd: Workdir, inputs: list[str]) -> int:
    return len(_expanded(wd, inputs))


def check_effects(wd: Workdir, name: str, params: dict, res: subprocess.CompletedProcess):
    params = {**params, "_root": wd.root}
    out = params.get("out") or _job_fields(params).get("out")
    if name in ("score", "demo"):
        inputs = _inputs(params) if name == "score" else None
        slides = _table(wd, f"{out.rstrip('/')}/slides.parquet").to_pylist()
        if inputs is not None:
            urls = {r["url"] for r in slides}
            assert len(urls) >= _planned(wd, inputs)
        fs, root = _fs(wd, out)
        for r in slides:
            if r["status"] != "ok":
                assert r["slide_id"] in res.stderr, f"failed slide {r['slide_id']} not named"
                continue
            part = f"{root}/tiles/slide_id={r['slide_id']}/part-0.parquet"
            assert fs.exists(part) and fs.exists(f"{root}/masks/{r['slide_id']}.png")
            assert fs.exists(f"{root}/thumbnails/{r['slide_id']}.jpg")
            assert fs.exists(f"{root}/status/{r['slide_id']}.json")
            batch = params.get("batch") or _job_fields(params).get("batch") or name == "demo"
            if batch:
                assert fs.exists(f"{root}/batch/{r['slide_id']}/tile_summary.png")
            if params.get("tile_um") and r["mpp_x"]:
                assert abs(r["tile_px0"] - params["tile_um"] / r["mpp_x"]) <= 1
            if params.get("annotations"):  # labelled tiles and the class mask
                assert r["annotation_url"] and r["annotation_classes"], r
                tiles = _table(
                    wd, f"{out.rstrip('/')}/tiles/slide_id={r['slide_id']}/part-0.parquet"
                )
                labels = set(tiles.column("label").to_pylist()) - {"none"}
                assert labels <= set(r["annotation_classes"]), labels
                for c in r["annotation_classes"]:  # each class covers some tile
                    assert max(tiles.column(f"label_{c}").to_pylist()) > 0, c
                assert fs.exists(f"{root}/labels/{r['slide_id']}.png")
    elif name == "info":
        for url in params["slides"]:
            for path in sorted(glob.glob(url, root_dir=wd.root)) or [url]:
                assert Path(path).name in res.stdout, path
    elif name == "filters":
        assert "default" in res.stdout and "otsu" in res.stdout
    elif name == "select":
        target = params.get("to") or f"{params['out'].rstrip('/')}/selection.parquet"
        table = _table(wd, target)
        assert table.num_rows > 0
        ids = table.column("slide_id").to_pylist()
        if params.get("top"):
            assert max(ids.count(i) for i in set(ids)) <= params["top"]
        if params.get("stratum"):
            assert "stratum" in table.column_names
        if params.get("per_class"):  # exactly N boxes per class and slide
            boxes = table  # noqa: F841 — read by DuckDB's replacement scan
            counts = duckdb.sql("SELECT count(*) FROM boxes GROUP BY slide_id, class").fetchall()
            assert {c for (c,) in counts} == {params["per_class"]}, counts
        if params.get("within_contours"):
            assert None not in table.column("region").to_pylist()
        if params.get("sample") or params.get("within_contours"):
            from wsidist.io.slide import open_slide

            slides = {
                r["slide_id"]: r
                for r in _table(wd, f"{params['out'].rstrip('/')}/slides.parquet").to_pylist()
            }
            for b in table.to_pylist():  # level-0 boxes inside their slide
                s = slides[b["slide_id"]]
                assert b["x"] >= 0 and b["x"] + b["w"] <= s["width"], b
                assert b["y"] >= 0 and b["y"] + b["h"] <= s["height"], b
    elif name == "extract":
        dest = params["dest"].rstrip("/")
        index = _table(wd, f"{dest}/index.parquet").to_pylist()
        written = [r for r in index if r["status"] != "failed"]
        assert written, "no patch written"
        kinds = {r["kind"] for r in written}
        fs, root = _fs(wd, dest)
        for r in written:
            assert fs.exists(f"{root}/{r['key']}"), r["key"]
        patches = [r for r in written if r["kind"] == "patch"]
        if params.get("size"):
            assert {(r["out_w"], r["out_h"]) for r in patches} == {(params["size"],) * 2}
        if params.get("mpp"):
            assert all(abs(r["mpp"] - params["mpp"]) < 0.05 for r in patches)
        if params.get("shard_mb"):
            assert "shard" in kinds
        if params.get("mosaic"):
            assert "mosaic" in kinds
    elif name == "top-tiles":
        files = sorted((wd.root / out).iterdir())
        assert 0 < len(files) <= params["n"]
    elif name == "rewrite":
        rows = _table(wd, f"{out.rstrip('/')}/pyramids.parquet").to_pylist()
        assert len({r["url"] for r in rows}) >= _planned(wd, _inputs(params))
        for r in rows:
            if r["status"] != "ok":
                assert r["slide_id"] in res.stderr
                continue
            assert (wd.root / out / r["key"]).exists()
            assert (wd.root / out / "pyramids" / f"{r['slide_id']}.json").exists()
            if params.get("transcode"):
                assert r["transcode"] and r["lossless"]
            if params.get("codec") == "jpeg":
                assert r["codec"] == "jpeg"
        assert "open only in wsidist" in res.stderr or params.get("codec") == "jpeg"
    elif name in ("export", "restore"):
        import openslide

        with openslide.OpenSlide(str(wd.root / params["out"])) as osl:
            assert osl.level_count >= 1 and osl.dimensions[0] > 0
            osl.read_region((0, 0), 0, (64, 64))
    elif name == "infer":
        check_inference(wd, params, res)
    elif name == "stain-fit":
        from wsidist.imaging.stain import StainNormalizer, normalize_stain
        from wsidist.io.slide import open_slide

        normalizer = StainNormalizer.load(wd.root / params["to"])
        assert normalizer.method == params["method"]
        if "stain_matrix" in normalizer.params:  # unit stain vectors, hematoxylin first
            matrix = np.asarray(normalizer.params["stain_matrix"])
            assert matrix.shape == (2, 3) and np.allclose(np.linalg.norm(matrix, axis=1), 1)
            assert matrix[0, 0] > matrix[1, 0]
        with open_slide(str(wd.root / params["reference"])) as slide:
            rgb = slide.thumbnail(16)
        normalized = normalize_stain(rgb, str(wd.root / params["to"]))
        assert normalized.shape == rgb.shape and normalized.dtype == np.uint8
    elif name == "report":
        ids = _ok_ids(wd, params["out"])
        fs, root = _fs(wd, params.get("to") or f"{params['out'].rstrip('/')}/report")
        assert fs.exists(f"{root}/index.html"), "report/index.html was not written"
        table = json.loads(fs.cat_file(f"{root}/data/slides.json"))
        listed = {row[table["fields"].index("id")] for row in table["rows"]}
        assert listed >= ids
        for sid in ids:
            assert fs.exists(f"{root}/slides/{sid}.html"), f"no slide page for {sid}"
    elif name == "stats":
        targets = params["slides"]
        if len(targets) == 1 and fsspec_exists(wd, f"{targets[0].rstrip('/')}/slides.parquet"):
            urls = [
                r["url"] for r in _table(wd, f"{targets[0].rstrip('/')}/slides.parquet").to_pylist()
            ]
        else:
            urls = _expanded(wd, targets)
        names = [u.rstrip("/").rsplit("/", 1)[-1] for u in urls]
        assert names
        if params.get("as_json"):
            data = json.loads(res.stdout)
            assert sorted(r["name"] for r in data["slide_info"]) == sorted(names)
            assert {s["attribute"] for s in data["slide_stats"]} >= {"max width", "mean size"}
        else:
            assert all(n in res.stdout for n in names), res.stdout
            assert "slide_stats" in res.stdout
    elif name == "compact":  # every ok slide's tiles now in the manifest's bucket files
        out = params["out"].rstrip("/")
        manifest = json.loads((wd.root / out / "tiles" / "_manifest.json").read_text())
        rows = sum(f["rows"] for f in manifest["files"].values())
        slides = _table(wd, f"{out}/slides.parquet").to_pylist()
        assert rows == sum(r["n_tiles"] for r in slides if r["status"] == "ok"), rows
        assert not list((wd.root / out / "tiles").glob("slide_id=*/part-*.parquet"))
    elif name == "rails fit":
        rails = json.loads((wd.root / params["to"]).read_text())
        assert rails["kind"] == "wsidist.rails" and rails["label"] == params["label"]
        lo, hi = rails["features"]["entropy"]
        assert 0 <= lo <= hi <= 8 and rails["n_tiles"] > 0, rails
    elif name == "mask-from-tiles":
        dest = params.get("out") or f"{params['selection'].rpartition('/')[0] or '.'}/tile-masks"
        rows = _table(wd, f"{dest.rstrip('/')}/tile-masks.parquet").to_pylist()
        assert rows and all(r["status"] == "ok" for r in rows), rows
        for r in rows:
            assert fsspec_exists(wd, f"{dest.rstrip('/')}/{r['slide_id']}.png")
            assert r["slide_id"] in res.stdout
    elif name == "metrics":
        rows = _table(wd, params.get("to") or "metrics.parquet").to_pylist()
        scopes = [r["scope"] for r in rows]
        assert scopes.count("pooled") == scopes.count("mean") == 1 and "slide" in scopes
        assert "(pooled," in res.stdout and "(mean," in res.stdout
        for r in rows:
            if r["scope"] == "slide":
                assert r["slide_id"] in (res.stdout if r["status"] == "ok" else res.stderr)
    else:
        pytest.fail(f"the README test does not know what `wsidist {name}` writes")


def fsspec_exists(wd: Workdir, url: str) -> bool:
    fs, path = _fs(wd, url)
    return fs.exists(path)


def _ok_ids(wd: Workdir, out: str) -> set[str]:
    rows = _table(wd, f"{out.rstrip('/')}/slides.parquet").to_pylist()
    return {r["slide_id"] for r in rows if r["status"] == "ok"}


def check_inference(wd: Workdir, params: dict, res: subprocess.CompletedProcess) -> None:
    """inference.parquet has a row per planned slide; each ok slide has its predictions (one
    row per patch, hive-partitioned), heatmaps and arrays; the demo models agree with stage 1."""
    job = _job_fields(params)
    out = (params.get("out") or job["out"]).rstrip("/")
    source = (params.get("source") or job.get("inputs"))[0] if len(
        params.get("source") or job.get("inputs")) == 1 else None  # fmt: skip
    models = list(params.get("model") or job.get("models") or [])
    tta = [t for t in (params.get("tta") or "").split(",") if t] or list(job.get("tta") or [])
    rows = {r["slide_id"]: r for r in _table(wd, f"{out}/inference.parquet").to_pylist()}
    selection = None
    if source and source.endswith(".parquet"):
        selection = _table(wd, source).to_pylist()
        expected = {r["slide_id"] for r in selection}
    elif source and fsspec_exists(wd, f"{source.rstrip('/')}/slides.parquet"):
        expected = _ok_ids(wd, source)
    else:
        expected = None
        assert len(rows) >= _planned(wd, list(params.get("source") or job["inputs"]))
    if expected is not None:
        assert set(rows) >= expected, f"slides without an inference row: {expected - set(rows)}"
    fs, root = _fs(wd, out)
    assert fs.exists(f"{root}/regions.parquet") and fs.exists(f"{root}/region_features.parquet")
    tissue, glass = [], []
    for sid in expected if expected is not None else rows:
        r = rows[sid]
        if r["status"] != "ok":
            assert sid in res.stderr, f"failed slide {sid} not named"
            continue
        preds = _table(wd, f"{out}/predictions/slide_id={sid}/part-0.parquet")
        assert "slide_id" not in preds.column_names  # the hive folder carries it
        assert preds.num_rows == r["n_patches"] > 0
        for c in range(r["n_classes"]):
            p = np.asarray(preds.column(f"prob_{c}"))
            assert ((p >= 0) & (p <= 1)).all()
            assert (f"tta_std_{c}" in preds.column_names) == bool(tta)
            assert (f"ensemble_std_{c}" in preds.column_names) == (len(models) > 1)
            for ext in ("tiff", "png"):
                assert fs.exists(f"{root}/heatmaps/{sid}/mean_c{c}.{ext}"), (sid, c, ext)
        assert fs.exists(f"{root}/heatmaps/{sid}/heatmap.npz")
        if selection is not None:
            boxes = {(b["x"], b["y"], b["w"], b["h"]) for b in selection if b["slide_id"] == sid}
            got = set(zip(*(preds.column(k).to_pylist() for k in "xywh")))
            assert got == boxes, "the patches are not the selection's boxes"
        elif r["mask_source"] == "stage1":
            frac = np.asarray(preds.column("tissue_frac"))
            tissue += list(np.asarray(preds.column("prob_1"))[frac >= 0.9])
            glass += list(np.asarray(preds.column("prob_1"))[frac <= 0.1])
    if tissue and glass and all(m.startswith("wsidist.demo.models:") for m in models):
        # the demo models see tissue where the stage-1 mask does
        assert np.mean(tissue) > 0.5 > np.mean(glass), (np.mean(tissue), np.mean(glass))


def check_viewer(wd: Workdir, cmd: str, params: dict) -> None:
    """``view`` serves until stopped: run it on a free port, read its index page, then a
    DeepZoom descriptor and tile of each slide it lists (and the mask overlay of an OUT), and
    stop it."""
    argv = ["wsidist", *_words(wd, cmd), "--port", "0"]
    proc = subprocess.Popen(
        argv, cwd=wd.root, env=wd.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not (m := re.search(r"serving (\d+) slides at (http://\S+/)", "".join(lines))):
            assert proc.poll() is None, f"`{cmd}` exited {proc.returncode}: {''.join(lines)}"
            assert time.monotonic() < deadline, f"`{cmd}` did not start: {''.join(lines)}"
            time.sleep(0.1)
        n_slides, base = int(m[1]), m[2]

        def get(path: str) -> bytes:
            with urllib.request.urlopen(base + path.lstrip("/"), timeout=60) as resp:
                assert resp.status == 200, path
                return resp.read()

        page = get("/").decode()
        keys = list(dict.fromkeys(re.findall(r'href="/view/([^"#]+)"', page)))
        targets = params["targets"]
        out = (
            targets[0]
            if len(targets) == 1 and (wd.root / targets[0] / "slides.parquet").exists()
            else None
        )
        if out:
            urls = [r["url"] for r in _table(wd, f"{out.rstrip('/')}/slides.parquet").to_pylist()]
        else:
            urls = _expanded(wd, targets[:1])  # the slides; the pyramids pair with them
        names = {Path(u).name for u in urls}
        assert names and all(name in page for name in names), (names, page[:2000])
        assert n_slides >= len(names) and len(keys) >= n_slides
        for key in keys:
            root = ET.fromstring(get(f"/dzi/{key}.dzi"))
            size = next(e for e in root if e.tag.endswith("Size")).attrib
            top = math.ceil(math.log2(max(int(size["Width"]), int(size["Height"]))))
            tile = Image.open(io.BytesIO(get(f"/dzi/{key}_files/{top}/0_0.jpeg")))
            assert tile.format == "JPEG" and 0 < max(tile.size) <= int(
                root.attrib["TileSize"]
            ) + 2 * int(root.attrib["Overlap"])
            if out and "%40" not in key:
                assert get(f"/api/{key}/mask.png")[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=10)
    assert "Traceback" not in "".join(lines), "".join(lines)


@pytest.mark.parametrize("step", STEPS, ids=[s.id for s in STEPS])
def test_readme_example(step: Step, workdir: Workdir, request):
    text = step.text
    if "../shared" in text and not SLIDES.is_dir():  # (checked before the slow switch)
        pytest.skip(f"needs the real slides ({SLIDES}); set WSIDIST_TEST_SLIDES")
    if step.kind == "spec":
        from wsidist.filters import parse_pipeline

        for line in filter(None, (ln.strip() for ln in text.splitlines())):
            parse_pipeline(line)
        return
    if step.kind == "sql":
        sql = text.replace("'out/", f"'{workdir.root}/out/")
        assert duckdb.sql(sql).fetchall(), "the README query returns no row"
        return
    if step.kind == "python":
        script = workdir.root / f"readme_L{step.line}.py"
        script.write_text(text)
        res = subprocess.run(
            [sys.executable, script.name], cwd=workdir.root, env=workdir.env,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        return
    if _heavy(text) and not os.environ.get("WSIDIST_SLOW"):
        parse(_words(workdir, text))  # its options exist; running it waits for WSIDIST_SLOW
        pytest.skip("real slides, S3 or a scheduler: set WSIDIST_SLOW=1 to run it too")
    cmd = workdir.on_shared_cluster(workdir.remote(request, text))
    name, params = parse(_words(workdir, cmd))
    if name == "view":  # a server: checked while it runs, then stopped
        check_viewer(workdir, cmd, params)
        return
    res = workdir.run_shell(cmd)
    on_real = "../shared" in text
    ok_codes = (0, 1) if on_real else (0,)
    assert res.returncode in ok_codes, f"exit {res.returncode}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr and "UserWarning" not in res.stderr, res.stderr
    assert "next:" in res.stderr, f"`{cmd}` does not say what to run next"
    check_effects(workdir, name, params, res)


def _heavy(text: str) -> bool:
    """Examples on the real slides, S3 or a remote scheduler (minutes on a laptop)."""
    return any(k in text for k in ("../shared", "s3://", "tcp://"))


def test_the_readme_has_examples_of_every_command():
    from wsidist.cli.app import COMMANDS

    shown = {shlex.split(s.text, comments=True)[1] for s in STEPS if s.kind == "shell"}
    assert shown >= {name for name, _, _ in COMMANDS}, {n for n, _, _ in COMMANDS} - shown
    assert any(s.kind == "python" and '__name__ == "__main__"' in s.text for s in STEPS)
