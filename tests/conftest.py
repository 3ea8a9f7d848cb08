"""Shared test fixtures: paths to the real data in ../shared and skip markers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CUZR_DIR = SHARED_DATA / "cuzr_symgnn"
DEEPMIND_DIR = SHARED_DATA / "deepmind_glassy_dynamics"

requires_cuzr = pytest.mark.skipif(
    not (CUZR_DIR / "train0.pickle").exists(),
    reason=f"real CuZr data not found at {CUZR_DIR} (it is read from ../shared, never bundled)",
)


@pytest.fixture
def one_thread():
    """Torch on one intra-op thread for the test: tiny problems run fastest so on a shared
    machine (two spinning OpenMP threads ran a small training 7x slower at load 7 on 2 cores),
    and runs stay reproducible. Use as an argument, or with
    ``pytestmark = pytest.mark.usefixtures("one_thread")`` for a whole module."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_models_eager_one_thread():
    """For modules that build every model on tiny graphs: e3nn's TorchScript compilation
    costs seconds per model build and computes what its eager code does; one thread is
    fastest for tiny ops (on a loaded machine each multi-threaded op waits for its threads).
    Use with ``pytestmark = pytest.mark.usefixtures("small_models_eager_one_thread")``."""
    import e3nn
    import torch

    saved, threads = e3nn.get_optimization_defaults(), torch.get_num_threads()
    e3nn.set_optimization_defaults(jit_script_fx=False)
    torch.set_num_threads(1)
    yield
    e3nn.set_optimization_defaults(**saved)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    """Synthetic train/val/test graphs and their manifest (tests/synthetic.py) for training tests."""
    from tests.synthetic import synthetic_manifest, synthetic_splits

    graphs = synthetic_splits()
    return graphs, synthetic_manifest(graphs)
