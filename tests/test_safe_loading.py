"""Loading never runs a stranger's code: crafted pickles and checkpoints are refused unrun,
every real input pickle still loads, and a damaged checkpoint is one line naming the file."""

from __future__ import annotations

import glob
import pickle
import shutil

import numpy as np
import pytest
import torch

import construct_graph
import explain
import predict
from glassgnn.checkpoint import CheckpointError, convert_run, load_checkpoint, rng_state, set_rng_state
from glassgnn.readers import ReaderError, read_snapshots
from glassgnn.readers.pickles import load_pickle
from tests.conftest import CUZR_DIR, DEEPMIND_DIR, REPO
from tests.reader_fixtures import write_symgnn

BUNDLED_RUN = REPO / "datasets" / "deepmind" / "t044_s09"


class Payload:
    """Unpickling this creates the file ``marker`` (what a hostile ``__reduce__`` could do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _hostile_pickle(path, marker):
    data = {"positions": np.zeros((2, 3)), "types": np.ones(2), "box": np.full(3, 5.0), "x": Payload(marker)}
    path.write_bytes(pickle.dumps(data))
    return path


def _hostile_run(root, marker):
    run = root / "run"
    shutil.copytree(BUNDLED_RUN, run)
    state = torch.load(BUNDLED_RUN / "best.pt", weights_only=True)
    torch.save({**state, "extra": Payload(marker)}, run / "best.pt")
    return run


def test_every_real_input_pickle_loads():
    files = sorted(glob.glob(str(REPO / "datasets" / "**" / "*.pickle"), recursive=True))
    files += sorted(glob.glob(str(CUZR_DIR / "*.pickle"))) + sorted(glob.glob(str(DEEPMIND_DIR / "*.pickle")))
    assert len(files) >= 3 + 16 + 9 * 12  # bundled DeepMind, ka_T0.64 and ka_temperature
    for path in files:
        data = load_pickle(path)
        with open(path, "rb") as handle:
            reference = pickle.load(handle)  # trusted files: compare with the unrestricted loader
        assert sorted(data) == sorted(reference)
        for key, value in reference.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(data[key], value)
        assert read_snapshots(path)[0].num_atoms > 0


def test_hostile_pickle_is_refused_by_the_reader(tmp_path):
    marker = tmp_path / "pwned"
    path = _hostile_pickle(tmp_path / "evil.pickle", marker)
    with pytest.raises(ReaderError, match=r"evil\.pickle: refused to load io\.open"):
        read_snapshots(path)
    assert not marker.exists()


def test_hostile_pickle_through_construct_graph_and_predict(tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = _hostile_pickle(tmp_path / "evil.pickle", marker)
    with pytest.raises(SystemExit) as exit_info:
        construct_graph.main(["--train", str(path), "--cutoff", "2", "--output_dir", str(tmp_path / "ds")])
    message = str(exit_info.value.code)
    assert f"{path}: refused to load io.open" in message and "\n" not in message
    with pytest.raises(SystemExit):
        predict.main(
            ["--run_dir", str(BUNDLED_RUN), "--input", str(path), "--output", str(tmp_path / "o.npz")]
        )
    assert f"{path}: refused to load io.open" in capsys.readouterr().err
    assert not marker.exists()
    assert not (tmp_path / "ds").exists() and not (tmp_path / "o.npz").exists()


def test_hostile_checkpoint_through_predict_and_explain(tmp_path, capsys):
    marker = tmp_path / "pwned"
    run = _hostile_run(tmp_path, marker)
    pickle_in = REPO / "datasets" / "deepmind" / "test_small.pickle"
    with pytest.raises(SystemExit):
        predict.main(["--run_dir", str(run), "--input", str(pickle_in), "--output", str(tmp_path / "p.npz")])
    err = capsys.readouterr().err
    assert f"{run / 'best.pt'}: refused to load" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        explain.main(["--run_dir", str(run), "--output_dir", str(tmp_path / "ex")])
    assert f"{run / 'best.pt'}: refused to load" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_checkpoint_is_one_line_naming_the_file(tmp_path, capsys, keep):
    run = tmp_path / "run"
    shutil.copytree(BUNDLED_RUN, run)
    data = (BUNDLED_RUN / "best.pt").read_bytes()
    (run / "best.pt").write_bytes(data[: int(keep * len(data)) if keep < 1 else keep])
    with pytest.raises(CheckpointError, match=r"best\.pt: truncated or corrupt checkpoint"):
        load_checkpoint(run / "best.pt")
    pickle_in = REPO / "datasets" / "deepmind" / "test_small.pickle"
    with pytest.raises(SystemExit):
        predict.main(["--run_dir", str(run), "--input", str(pickle_in), "--output", str(tmp_path / "p.npz")])
    err = capsys.readouterr().err
    assert err.startswith(f"predict.py: error: {run / 'best.pt'}: truncated") and err.count("\n") == 1


def test_rng_state_survives_weights_only(tmp_path):
    np.random.seed(3)  # noqa: NPY002
    torch.save({"rng": rng_state()}, tmp_path / "s.pt")
    expected = np.random.rand(4)  # noqa: NPY002
    np.random.seed(99)  # noqa: NPY002
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    np.testing.assert_array_equal(np.random.rand(4), expected)  # noqa: NPY002


def test_format_1_run_gives_one_message_and_converts(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    legacy_numpy = np.random.get_state()  # noqa: NPY002
    rng = {"python": (3, tuple(range(625)), None), "numpy": legacy_numpy, "torch": torch.ones(1)}
    old = {"format_version": 1, "model": {"w": torch.ones(2)}, "rng": [rng]}
    torch.save(old, run / "last.pt")
    with pytest.raises(CheckpointError, match=r"python -m glassgnn.checkpoint .*run$"):
        load_checkpoint(run / "last.pt")
    assert convert_run(run) == [run / "last.pt"]
    state = load_checkpoint(run / "last.pt")
    assert state["format_version"] == 2
    np.testing.assert_array_equal(state["rng"][0]["numpy"]["state"]["key"], old["rng"][0]["numpy"][1])


def test_symgnn_fixture_still_reads(tmp_path):
    write_symgnn(tmp_path / "a.pickle")
    assert read_snapshots(tmp_path / "a.pickle")[0].num_atoms == 30
