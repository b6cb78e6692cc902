"""A ``rails:FILE`` scorer's bounds are part of the skip key: editing them rescores slides."""

from __future__ import annotations

import pytest

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.filters.rails import Rails, load_rails, save_rails
from wsidist.query.select import select
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.driver import run_stage1


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("rails-rerun") / "s.svs"
    write_synthetic_slide(path, SynthSpec(width=1024, height=768, seed=4, n_blobs=1))
    return str(path)


def _scores(out):
    return sorted(r["score"] for r in select(out).to_pylist())


def test_editing_the_rails_reruns_and_other_fields_do_not(client, slide, tmp_path):
    rails_file = tmp_path / "rails.json"
    save_rails(Rails({"tissue_frac": (0.0, 1.0)}, label="tissue"), str(rails_file))
    config = Stage1Config(scale=16, tile_size=128, scorer=f"rails:{rails_file}")
    out = str(tmp_path / "out")
    first = run_stage1([slide], out, config, client=client)
    assert first.column("status").to_pylist() == ["ok"]
    wide = _scores(out)
    assert sum(s > 0 for s in wide) >= 3
    # only the label and the source change: the scores cannot, so the slide is skipped
    save_rails(Rails({"tissue_frac": (0.0, 1.0)}, label="other", source="x"), str(rails_file))
    same = run_stage1([slide], out, config, client=client)
    assert same.column("skipped").to_pylist() == [True]
    # narrower bounds: the slide is rescored, and tiles outside them now score 0
    save_rails(Rails({"tissue_frac": (0.99, 1.0)}, label="tissue"), str(rails_file))
    assert load_rails(str(rails_file)).features["tissue_frac"] == (0.99, 1.0)
    again = run_stage1([slide], out, config, client=client)
    assert again.column("skipped").to_pylist() == [False]
    assert again.column("config_hash")[0] != first.column("config_hash")[0]
    narrow = _scores(out)
    assert sum(s > 0 for s in narrow) < sum(s > 0 for s in wide)
