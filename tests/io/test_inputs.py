"""Expanding CLI inputs into slide URLs, and safe slide ids."""

from __future__ import annotations

import uuid

import fsspec
import pytest

from wsidist.errors import WsidistError
from wsidist.io.inputs import assign_slide_ids, expand_inputs, slide_id_for


@pytest.fixture
def tree(tmp_path):
    for rel in [
        "a/one.svs",
        "a/two.NDPI",
        "a/notes.txt",
        "a/deep/three.ome.tiff",
        "a/deep/.hidden.svs",
        "a/.cache/x.svs",
        "a/dicom1/level-0.dcm",
        "a/dicom1/level-1.dcm",
        "b/four.tif",
        "b/five.mrxs",
        "b/five/Slidedat.ini",
        "empty/readme.md",
    ]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    return tmp_path


def test_directory_is_walked_recursively(tree):
    got = expand_inputs([str(tree / "a")])
    assert got == sorted(
        str(tree / r) for r in ["a/one.svs", "a/two.NDPI", "a/deep/three.ome.tiff", "a/dicom1"]
    )


def test_glob_files_dedup_and_sorted(tree):
    got = expand_inputs(
        [str(tree / "b" / "*"), str(tree / "a" / "one.svs"), str(tree / "a" / "one.svs"),
         str(tree / "a" / "dicom1" / "*.dcm"), (tree / "b" / "four.tif").as_uri()]
    )  # fmt: skip
    assert got == sorted(
        [
            str(tree / "b/four.tif"),
            str(tree / "b/five.mrxs"),
            str(tree / "a/one.svs"),
            str(tree / "a/dicom1"),
        ]
    )
    assert got == sorted(got) and len(got) == len(set(got))


def test_recursive_glob_and_dcm_file_item(tree):
    assert expand_inputs([str(tree / "**" / "*.svs")]) == [str(tree / "a/one.svs")]
    assert expand_inputs([str(tree / "a/dicom1/level-1.dcm")]) == [str(tree / "a/dicom1")]


def test_explicit_file_with_other_extension_is_kept(tree):
    assert expand_inputs([str(tree / "a/notes.txt")]) == [str(tree / "a/notes.txt")]


@pytest.mark.parametrize("item", ["missing.svs", "nothing/*.svs", "empty"])
def test_unmatched_item_raises_naming_it(tree, item):
    with pytest.raises(WsidistError, match=item.replace("*", r"\*").replace(".", r"\.")):
        expand_inputs([str(tree / item)])


def test_remote_glob_and_directory():
    fs = fsspec.filesystem("memory")
    root = f"/wsidist-inputs-{uuid.uuid4().hex}"
    for rel in ["s/a.svs", "s/b.svs", "s/c.txt", "s/sub/d.ndpi", "s/dcm/x.dcm", "s/dcm/y.dcm"]:
        fs.pipe(f"{root}/{rel}", b"x")
    try:
        assert expand_inputs([f"memory://{root}/s/*.svs"]) == [
            f"memory://{root}/s/a.svs",
            f"memory://{root}/s/b.svs",
        ]
        assert expand_inputs([f"memory://{root}/s"]) == sorted(
            f"memory://{root}/s/{r}" for r in ["a.svs", "b.svs", "sub/d.ndpi", "dcm"]
        )
        assert expand_inputs([f"memory://{root}/s/a.svs"]) == [f"memory://{root}/s/a.svs"]
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
        ("/d/series/level-0.dcm", "series"),
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


def test_assign_slide_ids_disambiguates_collisions():
    urls = ["/a/s1.svs", "/b/s1.svs", "s3://x/S1.ndpi", "/c/other.svs", "/a/s1.svs"]
    ids = assign_slide_ids(urls)
    assert list(ids) == ["/a/s1.svs", "/b/s1.svs", "s3://x/S1.ndpi", "/c/other.svs"]
    assert ids["/c/other.svs"] == "other"
    clashing = [ids[u] for u in urls[:3]]
    assert len({c.lower() for c in clashing}) == 3
    assert all(c.lower().startswith("s1-") and len(c) == 11 for c in clashing)
    assert assign_slide_ids(urls) == ids  # stable
