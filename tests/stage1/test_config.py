"""Job configuration: YAML + flags, validation naming the bad value, stable hash."""

import pytest
import yaml

from tests.helpers.paths import REPO
from wsidist.stage1.config import ConfigError, Stage1Config, build_job


def test_yaml_and_flags_merge(tmp_path):
    job_file = tmp_path / "job.yaml"
    job_file.write_text("kind: stage1\ninputs: [a.svs]\nout: o/\nscale: 16\ntissue: otsu\n")
    job = build_job(job_file, scale=64.0, workers=2, tile_um=None)
    assert job.inputs == ["a.svs"] and job.out == "o/" and job.workers == 2
    assert job.config.scale == 64 and job.config.tissue == "otsu"


@pytest.mark.parametrize(
    ("in_file", "flag", "expected"),
    [
        ("tile_size: 1024", {"tile_um": 256.0}, (None, 256.0)),
        ("tile_um: 128", {"tile_size": 512}, (512, None)),
        ("tile_size: 1024", {"tile_size": 512}, (512, None)),
        ("tile_um: 128", {}, (None, 128.0)),
    ],
)
def test_a_flag_replaces_the_files_field_of_the_same_concept(tmp_path, in_file, flag, expected):
    job_file = tmp_path / "job.yaml"
    job_file.write_text(f"kind: stage1\ninputs: [a.svs]\nout: o/\n{in_file}\noverlap: 0\n")
    config = build_job(job_file, **flag).config
    assert (config.tile_size, config.tile_um) == expected


def test_the_shipped_job_file_takes_a_tile_um_flag():
    """`wsidist score --config jobs/stage1.yaml --tile-um 256`: the flag wins over tile_size."""
    config = build_job(REPO / "jobs" / "stage1.yaml", tile_um=256.0).config
    assert config.tile_um == 256.0 and config.tile_size is None


def test_hash_ignores_where_it_runs_but_not_what_it_computes():
    a = build_job(None, inputs=["x"], out="o1", workers=1).config
    b = build_job(None, inputs=["y"], out="o2", workers=4, batch=True).config
    assert a.config_hash() == b.config_hash()
    assert Stage1Config(scale=16).config_hash() != a.config_hash()
    assert Stage1Config(tissue="otsu").config_hash() != a.config_hash()


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("scale", -3, "scale"),
        ("tile_size", 0, "tile_size"),
        ("edge", "pad", "edge"),
        ("tissue", "gren_channel", "gren_channel"),
        ("scorer", "nope", "nope"),
        ("bogus", 1, "bogus"),
    ],
)
def test_bad_values_fail_naming_them(field, value, named):
    with pytest.raises(ConfigError, match=named):
        build_job(None, **{field: value})


def test_tile_units_are_exclusive_and_overlap_bounded():
    with pytest.raises(ConfigError, match="not both"):
        build_job(None, tile_size=512, tile_um=128.0)
    with pytest.raises(ConfigError, match="overlap"):
        build_job(None, tile_size=512, overlap=512)


def test_bad_job_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        build_job(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        build_job(tmp_path / "missing.yaml")


def test_every_shipped_job_file_is_valid():

    files = sorted((REPO / "jobs").glob("*.yaml"))
    assert files
    from wsidist.stage1.config import load_yaml
    from wsidist.stage2.config import build_rewrite_job

    kinds = set()
    for path in files:
        kind = yaml.safe_load(path.read_text()).get("kind", "stage1")
        kinds.add(kind)
        if kind == "rewrite":
            job = build_rewrite_job(path)
            assert job.inputs and job.out and job.config.codec
            continue
        if kind == "infer":
            from wsidist.infer.config import build_infer_job

            job = build_infer_job(path)
            assert job.inputs and job.out and job.config.models
            continue
        assert load_yaml(path)
        job = build_job(path)
        assert job.inputs and job.out
        assert job.config.tissue_pipeline().spec
    assert kinds == {"stage1", "rewrite", "infer"}


def test_refine_appends_to_a_preset_and_bad_refiners_are_named():
    config = build_job(None, tissue="otsu", refine="fill_holes |> dilation(radius_um=20)").config
    assert config.tissue_pipeline().spec.endswith("|> fill_holes |> dilation(radius_um=20)")
    assert config.config_hash() != build_job(None, tissue="otsu").config.config_hash()
    with pytest.raises(ConfigError, match="fil_holes"):
        build_job(None, refine="fil_holes")


def test_tissue_pipeline_as_yaml_mapping(tmp_path):
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        "tissue:\n  mask: green_channel & grays\n  refine:\n    - remove_small_objects: {min_px0: 51200}\n"
    )
    config = build_job(job_file).config
    assert config.tissue_pipeline().spec == (
        "green_channel & grays |> remove_small_objects(min_px0=51200)"
    )
    job_file.write_text("tissue:\n  mask: green_chanel & grays\n")
    with pytest.raises(ConfigError, match="green_chanel"):
        build_job(job_file)


def test_rails_digest_is_read_once_per_job_and_travels_with_the_config(tmp_path, monkeypatch):
    """A ``rails:FILE`` scorer's bounds are read once per job, when the driver pins the config:
    hashing the pinned config again, a pickled copy (a worker's) or a per-slide copy reads no
    file and gives the hash of those bounds (the same value as unpinned); a config pinned for
    the next job sees an edit."""
    import hashlib
    import pickle

    from wsidist.filters.rails import Rails, save_rails
    from wsidist.runtime.jobconfig import StageConfig
    from wsidist.stage1 import scoring as scoring_module
    from wsidist.stage1.scoring import scorer_digest

    rails_file = tmp_path / "rails.json"
    save_rails(Rails({"tissue_frac": (0.2, 1.0)}, label="tissue"), str(rails_file))
    spec = f"rails:{rails_file}"
    config = build_job(None, scorer=spec).config
    fields = StageConfig.config_hash(config)
    same_as_before = hashlib.sha256(f"{fields}:{scorer_digest(spec)}".encode()).hexdigest()[:16]
    reads = []
    real = scoring_module.load_rails
    monkeypatch.setattr(scoring_module, "load_rails", lambda u: reads.append(u) or real(u))
    job = config.pin_scorer()
    assert reads == [str(rails_file)]
    first = job.config_hash()
    assert first == same_as_before == config.config_hash() != fields
    assert len(reads) == 2  # the unpinned config reads the file each time it is hashed
    save_rails(Rails({"tissue_frac": (0.9, 1.0)}, label="tissue"), str(rails_file))  # edited
    worker_copy = pickle.loads(pickle.dumps(job))
    per_slide = worker_copy.model_copy(update={"mpp": 0.5})
    assert worker_copy.config_hash() == job.config_hash() == first
    assert per_slide.config_hash() not in (first, StageConfig.config_hash(per_slide))
    assert len(reads) == 2  # hashed four times, pinned: the file read by none of them
    assert config.pin_scorer().config_hash() != first  # the next job reads the new bounds
    save_rails(Rails({"tissue_frac": (0.2, 1.0)}, label="other"), str(rails_file))  # label only
    assert config.pin_scorer().config_hash() == first
    other = job.model_copy(update={"scorer": "seed"})  # a copy with another scorer
    assert other.config_hash() == Stage1Config(scorer="seed").config_hash()


def test_a_pinned_config_hashes_on_the_worker_without_reading_the_rails(tmp_path, monkeypatch):
    """process_slide (what a worker runs) hashes the job's pinned config without a read."""
    from wsidist.demo.synth import SynthSpec, write_synthetic_slide
    from wsidist.filters.rails import Rails, save_rails
    from wsidist.io.storage import Store
    from wsidist.runtime.tasks import SlideTask
    from wsidist.stage1 import config as config_module
    from wsidist.stage1.worker import process_slide

    slide = tmp_path / "s.svs"
    write_synthetic_slide(slide, SynthSpec(width=512, height=384, seed=3, n_blobs=1))
    rails_file = tmp_path / "rails.json"
    save_rails(Rails({"tissue_frac": (0.0, 1.0)}, label="tissue"), str(rails_file))
    job = Stage1Config(scale=16, tile_size=128, scorer=f"rails:{rails_file}").pin_scorer()
    reads = []
    monkeypatch.setattr(config_module, "scorer_digest", lambda s: reads.append(s))
    row = process_slide(SlideTask(str(slide), "s"), job, Store(str(tmp_path / "out")))
    assert row["status"] == "ok" and row["config_hash"] == job.config_hash()
    assert reads == []
