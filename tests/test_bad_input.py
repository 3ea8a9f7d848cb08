"""Bad input gives one clear line naming the file, quickly, and leaves nothing behind:
construct_graph.py on broken cells and files, train.py on bad settings and datasets."""

from __future__ import annotations

import pickle
import shutil
import time

import numpy as np
import pytest
import yaml

import construct_graph
import train
from tests.synthetic import write_dataset

THIN_CELL = np.array([[15.0, 0.0, 0.0], [15.0, 1e-7, 0.0], [0.0, 0.0, 15.0]])


pytestmark = pytest.mark.usefixtures("one_thread")


def _symgnn(path, n_atoms=20, **overrides):
    rng = np.random.default_rng(0)
    data = {
        "positions": rng.uniform(-4, 4, (n_atoms, 3)),
        "types": rng.integers(1, 3, n_atoms),
        "box": np.full(3, 8.0),
        "trajectory_start_velocities": rng.normal(size=n_atoms),
        **overrides,
    }
    path.write_bytes(pickle.dumps(data))
    return path


def _construct(tmp_path, inputs, *flags):
    """construct_graph.py's error line (it must fail) and whether the output folder appeared."""
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        construct_graph.main(
            ["--train", *map(str, inputs), "--cutoff", "4", "--output_dir", str(out), *flags]
        )
    message = str(exit_info.value.code)
    assert "\n" not in message and message.startswith("construct_graph.py: error: ")
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    return message


def test_near_degenerate_cell_is_refused_quickly_with_its_widths(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "thin.npz"
    np.savez(path, positions=rng.uniform(0, 1, (30, 3)) @ THIN_CELL, types=np.ones(30), box=THIN_CELL)
    start = time.perf_counter()
    message = _construct(tmp_path, [path])
    assert time.perf_counter() - start < 10
    assert (
        f"{path}: frame 0: the cell is too thin for cutoff 4: perpendicular widths [1.0e-07, 1.0e-07"
        in message
    )


def test_positions_of_two_columns_name_the_file(tmp_path):
    path = _symgnn(tmp_path / "flat.pickle", positions=np.zeros((20, 2)))
    assert f"{path}: positions must have shape (N, 3), got (20, 2)" in _construct(tmp_path, [path])


def test_lammps_format_on_a_pickle_names_the_file(tmp_path):
    path = _symgnn(tmp_path / "a.pickle")
    message = _construct(tmp_path, [path], "--format", "lammps")
    assert f"{path}: not a text file, so not a LAMMPS dump" in message


def test_a_directory_as_input_says_so(tmp_path):
    (tmp_path / "inputs").mkdir()
    message = _construct(tmp_path, [tmp_path / "inputs"])
    assert f"{tmp_path / 'inputs'}: is a directory, not an input file" in message


def test_two_atoms_at_the_same_position_are_named(tmp_path):
    positions = np.random.default_rng(1).uniform(-4, 4, (20, 3))
    positions[12] = positions[5]
    path = _symgnn(tmp_path / "dup.pickle", positions=positions)
    assert f"{path}: frame 0: atoms 5 and 12 are at the same position" in _construct(tmp_path, [path])


def test_an_atom_too_far_to_wrap_is_refused(tmp_path):
    positions = np.random.default_rng(1).uniform(-4, 4, (20, 3))
    positions[7, 0] = 1e18
    path = _symgnn(tmp_path / "far.pickle", positions=positions)
    message = _construct(tmp_path, [path])
    assert f"{path}: atom 7 at [1e+18," in message and "wrapping it would lose its position" in message


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("bad_train") / "ds")


def _train_error(tmp_path, capsys, *flags):
    """train.py's one error line; asserts that no run folder was made."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--model_name=mlp", f"--output_dir={out}", "--max_epoch=1", *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: ") and err.count("\n") == 1, err
    assert not out.exists() and not list(tmp_path.glob(".run*"))
    return err


def test_train_refuses_a_nan_learning_rate_before_any_folder(tmp_path, capsys, dataset):
    conf = tmp_path / "nan.yaml"
    conf.write_text("global:\n  learning_rate: .nan\n")
    err = _train_error(tmp_path, capsys, f"--dataset_dir={dataset}", f"--model_config_path={conf}")
    assert "learning_rate must be a finite number, got nan" in err


def test_train_refuses_a_model_it_cannot_build_before_any_folder(tmp_path, capsys, dataset):
    conf = tmp_path / "neg.yaml"
    conf.write_text(yaml.safe_dump({"mlp": {"hidden_dims": [-4]}}))
    err = _train_error(tmp_path, capsys, f"--dataset_dir={dataset}", f"--model_config_path={conf}")
    assert "model mlp cannot be built with" in err and "'hidden_dims': [-4]" in err
    err = _train_error(
        tmp_path, capsys, f"--dataset_dir={dataset}", f"--model_config_path={conf}", "--num_exp=2"
    )
    assert "model mlp cannot be built with" in err


@pytest.mark.parametrize(
    ("split", "damage", "message"),
    [
        ("train", "empty", "train.bin: holds no graph: training needs train graphs"),
        ("val", "empty", "val.bin: holds no graph: training needs val graphs"),
        ("val", "missing", "val.bin is missing"),
        ("train", "truncated", "train.bin: truncated or corrupt graph file"),
    ],
)
def test_train_refuses_a_damaged_dataset_before_any_folder(tmp_path, capsys, dataset, split, damage, message):
    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    path = broken / f"{split}.bin"
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2] if damage == "truncated" else b"")
    assert message in _train_error(tmp_path, capsys, f"--dataset_dir={broken}", "--node_fields", "cn")
