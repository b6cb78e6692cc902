"""Expanding CLI inputs into slide URLs (DICOM series, skips, output exclusion), and safe ids."""

from __future__ import annotations

import os
import uuid

import fsspec
import numpy as np
import pytest

from wsidist.demo.dicom import write_dicom_series
from wsidist.errors import ConfigError, WsidistError
from wsidist.io.inputs import assign_slide_ids, expand, expand_inputs, slide_id_for

TINY = np.full((64, 80, 3), 200, np.uint8)


def tiny_series(folder, prefix="level", n_levels=2):
    levels = [TINY[: 64 >> k, : 80 >> k] for k in range(n_levels)]
    return write_dicom_series(folder, levels, frame=32, prefix=prefix)


@pytest.fixture
def tree(tmp_path):
    for rel in [
        "a/one.svs",
        "a/two.NDPI",
        "a/notes.txt",
        "a/deep/three.ome.tiff",
        "a/deep/.hidden.svs",
        "a/..double.svs",
        "a/._one.svs",
        "a/.cache/x.svs",
        "b/four.tif",
        "b/five.mrxs",
        "b/five/Slidedat.ini",
        "empty/readme.md",
    ]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    tiny_series(tmp_path / "a" / "dicom1")
    return tmp_path


def test_directory_is_walked_recursively_and_skips_are_counted(tree):
    found = expand([str(tree / "a")])
    assert found.urls == sorted(
        str(tree / r)
        for r in ["a/one.svs", "a/two.NDPI", "a/deep/three.ome.tiff", "a/dicom1",
                  "a/deep/.hidden.svs", "a/..double.svs"]
    )  # fmt: skip
    notes = found.notes()
    assert "skipped 1 file: unknown extension (.txt ×1)" in notes
    assert any(n.startswith("skipped 1 file: macOS resource fork") for n in notes)
    assert any(n.startswith("skipped 1 folder: in a hidden folder") for n in notes)


def test_glob_files_dedup_and_sorted(tree):
    got = expand_inputs(
        [str(tree / "b" / "*"), str(tree / "a" / "one.svs"), str(tree / "a" / "one.svs"),
         str(tree / "a" / "dicom1" / "*.dcm"), (tree / "b" / "four.tif").as_uri(),
         str(tree / "a" / "*.svs")]
    )  # fmt: skip
    assert got == sorted(
        str(tree / r)
        for r in ["b/four.tif", "b/five.mrxs", "a/one.svs", "a/dicom1", "a/..double.svs"]
    )


def test_recursive_glob_and_dcm_file_item(tree):
    assert expand_inputs([str(tree / "**" / "one.svs")]) == [str(tree / "a/one.svs")]
    assert expand_inputs([str(tree / "a/dicom1/level-1.dcm")]) == [str(tree / "a/dicom1")]


def test_explicit_file_with_other_extension_is_kept(tree):
    assert expand_inputs([str(tree / "a/notes.txt")]) == [str(tree / "a/notes.txt")]


@pytest.mark.parametrize("item", ["missing.svs", "nothing/*.svs", "empty"])
def test_unmatched_item_raises_naming_it(tree, item):
    with pytest.raises(WsidistError, match=item.replace("*", r"\*").replace(".", r"\.")):
        expand_inputs([str(tree / item)])


def test_empty_folder_says_what_it_skipped(tree):
    with pytest.raises(WsidistError, match=r"unknown extension \(\.md ×1\)"):
        expand_inputs([str(tree / "empty")])


def test_two_series_in_one_folder_are_two_slides(tmp_path):
    """Each series is one slide, known by its main file; every file belongs to exactly one."""
    a = tiny_series(tmp_path / "mixed", prefix="alpha")
    b = tiny_series(tmp_path / "mixed", prefix="beta", n_levels=1)
    (tmp_path / "mixed" / "broken.dcm").write_bytes(b"not dicom")
    folder = str(tmp_path / "mixed")
    both = expand_inputs([folder])
    assert both == sorted([str(a[0]), str(b[0]), str(tmp_path / "mixed" / "broken.dcm")])
    # each file given explicitly stands for its own series; files of one series: one slide
    assert expand_inputs([str(a[1])]) == [str(a[0])]
    assert expand_inputs([str(b[0])]) == [str(b[0])]
    assert expand_inputs([str(a[0]), str(a[1]), str(b[0])]) == sorted([str(a[0]), str(b[0])])
    assert len({slide_id_for(u) for u in both}) == 3


def test_junk_dcm_does_not_rename_the_folders_series(tmp_path):
    tiny_series(tmp_path / "s")
    (tmp_path / "s" / "junk.dcm").write_bytes(b"x")
    got = expand_inputs([str(tmp_path / "s")])
    assert got == [str(tmp_path / "s"), str(tmp_path / "s" / "junk.dcm")]


def test_path_with_glob_characters_is_taken_literally(tmp_path):
    odd = tmp_path / "br[" / "]x.svs"  # the path contains "[/]"
    odd.parent.mkdir()
    odd.write_bytes(b"x")
    assert expand_inputs([str(odd)]) == [str(odd)]
    assert expand_inputs([str(tmp_path / "br[")]) == [str(odd)]


def test_symlinks_dangling_loop_and_cycle(tmp_path):
    """Broken links are rows (reasons come when opened); a folder cycle adds no duplicate."""
    d = tmp_path / "in" / "d"
    d.mkdir(parents=True)
    (d / "real.svs").write_bytes(b"x")
    os.symlink("..", d / "up")  # a folder cycle
    os.symlink("/nonexistent/gone.svs", tmp_path / "in" / "dangling.svs")
    os.symlink("loop.svs", tmp_path / "in" / "loop.svs")
    want = sorted(str(tmp_path / "in" / n) for n in ["dangling.svs", "loop.svs", "d/real.svs"])
    assert expand_inputs([str(tmp_path / "in")]) == want
    found = expand([str(tmp_path / "in" / "**" / "*.svs")])
    assert found.urls == want
    assert any("symbolic link" in n for n in found.notes())


def test_output_root_inside_the_input_is_excluded(tmp_path):
    (tmp_path / "in" / "out" / "pyramids").mkdir(parents=True)
    (tmp_path / "in" / "a.svs").write_bytes(b"x")
    (tmp_path / "in" / "out" / "pyramids" / "a.tiff").write_bytes(b"x")
    out = str(tmp_path / "in" / "out")
    found = expand([str(tmp_path / "in")], exclude=[out])
    assert found.urls == [str(tmp_path / "in" / "a.svs")]
    assert any("inside the job's output folder" in n for n in found.notes())
    with pytest.raises(WsidistError, match="matches no slide.*inside the job's output"):
        expand_inputs([str(tmp_path / "in" / "**" / "*.tif*")], exclude=[out])
    # asked for explicitly (a folder or file inside the output): kept
    inner = str(tmp_path / "in" / "out" / "pyramids")
    assert expand_inputs([inner], exclude=[out]) == [inner + "/a.tiff"]


def test_remote_glob_directory_and_dicom_series(tmp_path):
    fs = fsspec.filesystem("memory")
    root = f"/wsidist-inputs-{uuid.uuid4().hex}"
    for rel in ["s/a.svs", "s/b.svs", "s/c.txt", "s/sub/d.ndpi", "s/.hid/e.svs", "out/p/x.tiff"]:
        fs.pipe(f"{root}/{rel}", b"x")
    for p in tiny_series(tmp_path / "dcm"):
        fs.pipe(f"{root}/s/dcm/{p.name}", p.read_bytes())
    try:
        assert expand_inputs([f"memory://{root}/s/*.svs"]) == [
            f"memory://{root}/s/a.svs",
            f"memory://{root}/s/b.svs",
        ]
        found = expand([f"memory://{root}/s"])
        assert found.urls == sorted(
            f"memory://{root}/s/{r}" for r in ["a.svs", "b.svs", "sub/d.ndpi", "dcm"]
        )
        assert any("hidden folder" in n for n in found.notes())
        assert expand_inputs([f"memory://{root}/s/dcm/level-1.dcm"]) == [f"memory://{root}/s/dcm"]
        assert expand_inputs([f"memory://{root}/s/a.svs"]) == [f"memory://{root}/s/a.svs"]
        assert expand_inputs([f"memory://{root}"], exclude=[f"memory://{root}/out"]) == sorted(
            f"memory://{root}/s/{r}" for r in ["a.svs", "b.svs", "sub/d.ndpi", "dcm"]
        )
        with pytest.raises(WsidistError, match="missing"):
            expand_inputs([f"memory://{root}/missing.svs"])
        with pytest.raises(WsidistError, match="matches no slide"):
            expand_inputs([f"memory://{root}/s/*.bif"])
    finally:
        fs.rm(root, recursive=True)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/data/CMU-1-Small-Region.svs", "CMU-1-Small-Region"),
        ("s3://bucket/x/test3-DAPI-2-(387).ndpi", "test3-DAPI-2-_387"),
        ("/d/slide.ome.tiff", "slide"),
        ("/d/dicom/cmu-1-small-region", "cmu-1-small-region"),
        ("/d/dicom/cmu-1-small-region/", "cmu-1-small-region"),
        ("/d/series/level-0.dcm", "level-0"),
        ("/d/..svs", "slide"),
        ("/d/...hidden.svs", "hidden"),
        ("/d/名前 with spaces.svs", "with_spaces"),
        ("memory:///a/b/c.tif", "c"),
        ("C:\\slides\\win.svs", "win"),
        ("/d/" + "x" * 300 + ".svs", "x" * 100),
        ("", "slide"),
    ],
)
def test_slide_id_for(url, expected):
    sid = slide_id_for(url)
    assert sid == expected
    assert 0 < len(sid) <= 100 and not sid.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in sid)


def test_slide_id_is_a_function_of_the_url_alone():
    """The id of a URL never depends on what else is in the run."""
    alone = assign_slide_ids(["/c/other.svs"])
    assert alone == {"/c/other.svs": "other"}
    assert assign_slide_ids(["/a/s1.svs", "/c/other.svs"])["/c/other.svs"] == "other"
    assert assign_slide_ids(["/a/s1.svs", "/a/s1.svs"]) == {"/a/s1.svs": "s1"}


@pytest.mark.parametrize(
    "urls", [["/a/s1.svs", "/b/s1.svs"], ["/a/s1.svs", "s3://x/S1.ndpi"], ["/a/CMU.svs", "/d/cmu"]]
)
def test_two_urls_with_one_id_are_refused_naming_both(urls):
    with pytest.raises(ConfigError) as err:
        assign_slide_ids(urls)
    assert urls[0] in str(err.value) and urls[1] in str(err.value)
    assert "manifest" in str(err.value)


def test_given_ids_are_used_and_checked():
    ids = assign_slide_ids(["/a/s1.svs", "/b/s1.svs"], {"/b/s1.svs": "s1-b"})
    assert ids == {"/a/s1.svs": "s1", "/b/s1.svs": "s1-b"}
    with pytest.raises(ConfigError, match="not a safe id"):
        assign_slide_ids(["/a/s1.svs"], {"/a/s1.svs": "../escape"})
