"""Pipeline spec language: parsing, canonical text, dict form, units, errors, running."""

import pickle

import numpy as np
import pytest

from wsidist import filters as F
from wsidist.errors import PipelineError, WsidistError
from wsidist.filters import FILTERS, FilterContext, Pipeline, parse_pipeline

SEED = (
    "green_channel & grays & red_pen & green_pen & blue_pen |> remove_small_objects(min_px0=512000)"
)


def slide_like(h=60, w=80):
    """White glass, a pink tissue square, a 2 px tissue speck, a red pen stroke."""
    img = np.full((h, w, 3), 245, np.uint8)
    img[10:40, 10:40] = (220, 140, 190)
    img[50:52, 60:61] = (220, 140, 190)
    img[5:7, 45:75] = (200, 30, 40)
    return img


def test_seed_chain_parses_and_is_canonical():
    p = parse_pipeline(SEED)
    assert p.spec == SEED
    assert (
        parse_pipeline(
            "  green_channel&grays &red_pen&green_pen&blue_pen|>"
            "remove_small_objects( min_px0 = 512000 )"
        )
        == p
    )
    assert parse_pipeline(p.spec) == p
    assert not p.requires_mpp


def test_precedence_chain_not_parentheses():
    p = parse_pipeline("rgb_to_gray > complement > hysteresis(low=50, high=100) & ~pen | grays")
    assert p.spec == "rgb_to_gray > complement > hysteresis(low=50, high=100) & ~pen | grays"
    root = p.root
    assert type(root).__name__ == "Or" and type(root.operands[0]).__name__ == "And"
    q = parse_pipeline("~(green_channel | grays) & (otsu_saturation |> fill_holes)")
    assert q.spec == "~(green_channel | grays) & (otsu_saturation |> fill_holes)"
    assert parse_pipeline("((green_channel))") == parse_pipeline("green_channel")


def test_literals_and_param_order():
    p = parse_pipeline(
        "green_channel(overmask_thresh_pct=80.5, avoid_overmask=false, green_thresh=190)"
    )
    assert p.root.params == (
        ("green_thresh", 190),
        ("avoid_overmask", False),
        ("overmask_thresh_pct", 80.5),
    )
    assert p.spec == (
        "green_channel(green_thresh=190, avoid_overmask=false, overmask_thresh_pct=80.5)"
    )
    assert parse_pipeline("canny(sigma=2, high=2.5e1) |> dilation(radius_px=1)")


def test_presets_resolve_first():
    from wsidist.filters.tissue import PRESETS

    seed = parse_pipeline("seed000").spec
    assert seed.startswith("(green_channel & grays |> remove_small_objects(min_px0=512000))")
    assert all(pen in seed for pen in ("red_pen", "green_pen", "blue_pen"))
    # the default is the adaptive preset
    assert parse_pipeline("default") == parse_pipeline("auto")
    assert parse_pipeline("auto").root.name == "auto_tissue"
    for name, spec in PRESETS.items():
        assert parse_pipeline(name) == parse_pipeline(spec)
    # a preset name inside an expression is the filter of that name
    assert parse_pipeline("otsu & grays").root.operands[0].name == "otsu"


def test_dict_form():
    d = {
        "mask": "green_channel & grays & red_pen & green_pen & blue_pen",
        "refine": [{"remove_small_objects": {"min_px0": 512000}}],
    }
    assert parse_pipeline(d).spec == SEED
    chain = parse_pipeline(
        {"mask": ["rgb_to_gray", "complement", {"hysteresis": {"low": 40}}, "fill_holes"]}
    )
    assert chain.spec == "rgb_to_gray > complement > hysteresis(low=40) |> fill_holes"
    logic = parse_pipeline(
        {"mask": {"and": ["green_channel", {"not": "pen"}]}, "refine": "dilation(radius_um=50)"}
    )
    assert logic.spec == "green_channel & ~pen |> dilation(radius_um=50)"
    assert logic.requires_mpp
    refined = parse_pipeline({"preset": "otsu", "refine": ["fill_holes"]})
    assert refined.spec == parse_pipeline("otsu").spec + " |> fill_holes"


def test_pickle_and_immutability():
    p = parse_pipeline(SEED)
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(AttributeError):
        p.root = None
    with pytest.raises(TypeError):
        FILTERS["mine"] = FILTERS["otsu"]


def test_registry_kinds():
    assert FILTERS["complement"].kind == "image"
    assert FILTERS["green_channel"].kind == "mask"
    assert FILTERS["remove_small_objects"].kind == "refine"
    assert "min_um2" in FILTERS["remove_small_objects"].spec_param_names()


@pytest.mark.parametrize(
    ("spec", "token"),
    [
        ("gren_channel & grays", "gren_channel"),
        ("green_channel(green_tresh=190)", "green_tresh"),
        ("green_channel(green_thresh='high')", "green_thresh"),
        ("green_channel(green_thresh=2.5)", "green_thresh"),
        ("green_channel(avoid_overmask=1)", "avoid_overmask"),
        ("green_channel |> remove_small_objects(min_um=50)", "min_um"),
        ("green_channel |> dilation(radius_px0=-4)", "radius_px0"),
        ("complement & grays", "complement"),
        ("green_channel > otsu", "green_channel"),
        ("complement > fill_holes", "fill_holes"),
        ("complement |> fill_holes", "complement"),
        ("green_channel |> otsu", "otsu"),
        ("fill_holes", "fill_holes"),
        ("hsv_saturation > black_to_white > otsu", "black_to_white"),
        ("complement", "complement"),
        ("threshold", "threshold"),
        ("green_channel & (grays", "')'"),
        ("green_channel ; grays", "';'"),
        ("green_channel(green_thresh=__import__)", "__import__"),
        ("green_channel > (otsu)", "'('"),
        ("", "empty"),
    ],
)
def test_bad_specs_name_the_bad_token(spec, token):
    with pytest.raises(PipelineError) as info:
        parse_pipeline(spec)
    assert token in str(info.value)
    assert isinstance(info.value, WsidistError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("spec", "token"),
    [
        ({"mask": "green_channel", "refin": []}, "refin"),
        ({"mask": "green_channel", "refine": [{"dilation": {"radius_ux": 3}}]}, "radius_ux"),
        ({"mask": "green_channel", "refine": ["otsu"]}, "otsu"),
        ({"preset": "defualt"}, "defualt"),
        ({"mask": {"and": ["green_channel"]}}, "and"),
        ({"mask": ["green_channel", "gren"]}, "gren"),
        (42, "int"),
    ],
)
def test_bad_dict_specs(spec, token):
    with pytest.raises(PipelineError, match=token):
        parse_pipeline(spec)


def test_unit_conversion_px0_um2_um():
    ctx = FilterContext(downsample=10.0, mpp=0.5)  # 5 µm per image px
    img = slide_like()
    # 2 px speck and 900 px square: 100 µm² = 4 px removes the speck, keeps the square
    keep = parse_pipeline("grays |> remove_small_objects(min_um2=100, avoid_overmask=false)")
    assert keep.requires_mpp
    mask = keep.run(img, ctx).mask
    assert mask[10:40, 10:40].all() and not mask[50:52, 60].any()
    # 200 px0 area at downsample 10 = 2 px: nothing smaller than 2 px, speck survives
    assert parse_pipeline("grays |> remove_small_objects(min_px0=200)").run(img, ctx).mask[50, 60]
    # 10 µm = 2 px radius
    dot = parse_pipeline("grays |> erosion(radius_um=10)").run(img, ctx).mask
    ref = F.erosion(F.grays(img), radius_px=2)
    assert (dot == ref).all()


def test_um_without_mpp_is_a_clear_error():
    p = parse_pipeline("green_channel |> remove_small_objects(min_um2=5000)")
    with pytest.raises(PipelineError, match=r"no mpp.*--mpp.*min_px0"):
        p.check(FilterContext(downsample=32, mpp=None))
    with pytest.raises(PipelineError, match="min_um2"):
        p.run(slide_like(), FilterContext(downsample=32))
    p.check(FilterContext(downsample=32, mpp=0.25))
    with pytest.raises(PipelineError):
        FilterContext(downsample=0, mpp=None)


def test_run_steps_and_result():
    img = slide_like()
    ctx = FilterContext(downsample=32.0, mpp=None)
    res = parse_pipeline(SEED).run(img, ctx)
    names = [n for n, _ in res.steps]
    assert names == [
        "01-green_channel",
        "02-grays",
        "03-red_pen",
        "04-green_pen",
        "05-blue_pen",
        "06-and",
        "07-remove_small_objects",
    ]
    assert res.mask.dtype == bool and res.mask.shape == img.shape[:2]
    assert res.mask[10:40, 10:40].all()
    assert not res.mask[5:7, 45:75].any()  # pen stroke
    assert not res.mask[50:52, 60].any()  # 2 px speck below 500 px (512000 px0 / 32²)
    assert (res.steps[-1][1] == res.mask).all()
    assert parse_pipeline(SEED).run(img, ctx, keep_steps=False).steps == []


def test_gray_autoconversion_and_image_chain():
    img = slide_like()
    a = parse_pipeline("complement > otsu").run(img).mask
    b = parse_pipeline("rgb_to_gray > complement > otsu").run(img).mask
    assert a[10:40, 10:40].all() and (np.mean(a == b) > 0.99)
    res = parse_pipeline("black_to_white > median_blur(size_px=3) > hsv_saturation > otsu").run(img)
    assert [n for n, _ in res.steps][:3] == [
        "01-black_to_white",
        "02-median_blur",
        "03-hsv_saturation",
    ]
    assert res.steps[2][1].dtype == np.uint8 and res.steps[2][1].ndim == 2


def test_not_or_semantics():
    img = slide_like()
    pen = parse_pipeline("~pen").run(img).mask
    assert (pen == ~F.pen_mask(img)).all()
    union = parse_pipeline("red_pen | grays").run(img).mask
    assert (union == (F.red_pen(img) | F.grays(img))).all()


def test_refine_appends_steps():
    p = parse_pipeline("otsu_saturation").refine("|> fill_holes |> dilation(radius_px=1)")
    assert isinstance(p, Pipeline)
    assert p.spec == "otsu_saturation |> fill_holes |> dilation(radius_px=1)"
    with pytest.raises(PipelineError, match="grays"):
        parse_pipeline("otsu_saturation").refine(["grays"])


def test_a_size_in_um_with_a_pixel_fallback():
    from wsidist.filters import FilterContext

    p = parse_pipeline(
        "green_channel(avoid_overmask=false)"
        " |> remove_small_objects(min_um2=100, min_px0=6400, avoid_overmask=false)"
    )
    assert not p.requires_mpp
    img = np.full((40, 40, 3), 240, np.uint8)
    img[5:7, 5:7] = 100  # 4 px: 16 µm² at 2 µm/px, 256 px0 at downsample 8
    img[20:30, 20:30] = 100  # 100 px
    with_mpp = p.run(img, FilterContext(downsample=8.0, mpp=0.25)).mask  # min 100/4 = 25 px
    without = p.run(img, FilterContext(downsample=8.0)).mask  # min 6400/64 = 100 px
    assert not with_mpp[5:7, 5:7].any() and with_mpp[20:30, 20:30].all()
    assert without[20:30, 20:30].all()
    assert parse_pipeline("green_channel |> remove_small_objects(min_um2=100)").requires_mpp
    with pytest.raises(PipelineError, match="given twice"):
        parse_pipeline("green_channel |> remove_small_objects(min_um2=1, min_um2=2)")
    with pytest.raises(PipelineError, match="same size twice"):
        parse_pipeline("green_channel |> remove_small_objects(min_px=1, min_px0=2)")
