"""Fixtures shared by the stage-1 tests: the generated failure-class slides, written once."""

from __future__ import annotations

import concurrent.futures
import multiprocessing

import pytest

from wsidist.demo.classes import failure_specs
from wsidist.demo.synth import write_synthetic_slide

FAILURE_SIZE = (8000, 6000)  # level-0 px at 0.5 µm/px (4 x 3 mm)


def _write(args):
    path, spec = args
    return write_synthetic_slide(path, spec)


@pytest.fixture(scope="session")
def failure_pool():
    """Two spawned processes (one per core) for slide writes and analyses."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as executor:
        yield executor


@pytest.fixture(scope="session")
def failure_slides(tmp_path_factory, failure_pool):
    """``{class name: (path, truth)}``: every failure class of the generator, written once."""
    folder = tmp_path_factory.mktemp("failure-classes")
    specs = failure_specs(*FAILURE_SIZE)
    jobs = [(folder / f"{name}.svs", spec) for name, spec in specs.items()]
    truths = list(failure_pool.map(_write, jobs))
    return {name: (path, truth) for (path, _), name, truth in zip(jobs, specs, truths)}
