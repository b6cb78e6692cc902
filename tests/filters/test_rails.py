"""Rails: bounds per feature, inside tests, the JSON document and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from wsidist.errors import ConfigError, ScorerError
from wsidist.filters.rails import Rails, load_rails, save_rails
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.scoring import (
    RailsScorer,
    TileView,
    resolve_scorer,
    seed_scores,
    vectorised_scorer,
)


def test_inside_is_on_or_within_every_rail():
    rails = Rails({"entropy": (6.42, 7.46), "peak_frac": (0.0, 0.5)})
    cols = {
        "entropy": np.array([6.42, 7.46, 7.0, 6.0, 7.0, np.nan]),
        "peak_frac": np.array([0.1, 0.5, 0.6, 0.1, 0.2, 0.1]),
    }
    assert rails.inside(cols).tolist() == [True, True, False, False, True, False]
    with pytest.raises(ConfigError, match="peak_frac"):
        rails.inside({"entropy": cols["entropy"]})
    assert rails.where_sql() == (
        "(entropy BETWEEN 6.42 AND 7.46) AND (peak_frac BETWEEN 0.0 AND 0.5)"
    )


def test_json_round_trip_and_bad_files(tmp_path):
    rails = Rails({"entropy": (1.0, 2.0)}, label="tumour", tile_px0=256, n_tiles=9, source="x")
    path = str(tmp_path / "r.json")
    save_rails(rails, path)
    assert load_rails(path) == rails and load_rails(path).features == rails.features
    (tmp_path / "bad.json").write_text('{"kind": "something else"}')
    with pytest.raises(ConfigError, match="not a rails file"):
        load_rails(str(tmp_path / "bad.json"))
    (tmp_path / "inv.json").write_text('{"kind": "wsidist.rails", "features": {"e": [3, 1]}}')
    with pytest.raises(ConfigError, match="not an interval"):
        load_rails(str(tmp_path / "inv.json"))
    with pytest.raises(ConfigError, match="no such file"):
        load_rails(str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="column name"):
        Rails({"entropy; drop": (0.0, 1.0)})


def test_rails_scorer_is_the_seed_score_inside_and_zero_outside(tmp_path):
    path = tmp_path / "r.json"
    save_rails(Rails({"entropy": (5.0, 6.0)}), str(path))
    scorer = resolve_scorer(f"rails:{path}")
    assert isinstance(scorer, RailsScorer)
    feats = {
        "tissue_frac": np.array([1.0, 1.0]), "color_factor": np.array([50.0, 50.0]),
        "sv_factor": np.array([1.0, 1.0]), "quantity_factor": np.array([1.0, 1.0]),
        "entropy": np.array([5.5, 6.5]),
    }  # fmt: skip
    scores = vectorised_scorer(scorer)(feats)
    assert scores[0] == pytest.approx(seed_scores(feats)[0]) and scores[0] > 0
    assert scores[1] == 0.0
    one = TileView(0, 0, 0, 0, 1, 1, np.zeros((1, 1, 3), np.uint8), np.ones((1, 1), bool),
                   {k: float(v[0]) for k, v in feats.items()})  # fmt: skip
    assert scorer(one) == pytest.approx(scores[0])
    with pytest.raises(ScorerError, match="no such file"):
        resolve_scorer(f"rails:{tmp_path / 'missing.json'}")
    with pytest.raises(ValueError, match="missing.json"):
        Stage1Config(scorer=f"rails:{tmp_path / 'missing.json'}")  # before any slide is read
