"""A ``rails:FILE`` scorer's bounds are part of the skip key: editing them rescores slides."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from wsidist import layout
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


def test_a_job_reads_its_rails_once_on_the_driver_and_ships_them(client, slide, tmp_path):
    """The rails live in the driver's own memory (a filesystem no worker process sees): the
    job scores every slide with them all the same, as it does from a file every process
    reads, so no worker read the file."""
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c", "d"):
        shutil.copyfile(slide, folder / f"{name}.svs")
    rails = Rails({"tissue_frac": (0.5, 1.0)}, label="tissue")
    on_disk, in_memory = str(tmp_path / "rails.json"), "memory://wsidist-test/rails.json"
    save_rails(rails, on_disk)
    save_rails(rails, in_memory)
    scores = {}
    for where in (on_disk, in_memory):
        out = str(tmp_path / ("disk" if where == on_disk else "memory"))
        config = Stage1Config(scale=16, tile_size=128, scorer=f"rails:{where}")
        table = run_stage1([str(folder)], out, config, client=client)
        assert table.column("status").to_pylist() == ["ok"] * 4, table.column("error")
        scores[where] = sorted((r["slide_id"], r["score"]) for r in select(out).to_pylist())
    assert scores[in_memory] == scores[on_disk]
    assert 0 < sum(s > 0 for _, s in scores[on_disk]) < len(scores[on_disk])


def test_a_worker_scores_with_the_pinned_rails_whatever_the_file_becomes(slide, tmp_path):
    """process_slide with the job's config as a worker receives it (pickled): the scores are
    those of the rails as pinned, after the file was edited and after it was deleted."""
    import pickle

    from wsidist.io.storage import Store
    from wsidist.runtime.tasks import SlideTask
    from wsidist.stage1.worker import process_slide

    rails_file = tmp_path / "rails.json"
    save_rails(Rails({"tissue_frac": (0.5, 1.0)}, label="tissue"), str(rails_file))
    job = Stage1Config(scale=16, tile_size=128, scorer=f"rails:{rails_file}").pin_scorer()

    def scores(name: str) -> list[float]:
        out = str(tmp_path / name)
        worker_copy = pickle.loads(pickle.dumps(job))
        row = process_slide(SlideTask(slide, "s"), worker_copy, Store(out))
        assert row["status"] == "ok", row["error"]
        assert row["config_hash"] == job.config_hash()
        return pq.read_table(f"{out}/{layout.tiles_key('s')}").column("score").to_pylist()

    pinned = scores("pinned")
    assert 0 < sum(s > 0 for s in pinned) < len(pinned)
    save_rails(Rails({"tissue_frac": (0.0, 0.01)}, label="tissue"), str(rails_file))  # edited
    assert scores("edited") == pinned
    rails_file.unlink()
    assert scores("deleted") == pinned
