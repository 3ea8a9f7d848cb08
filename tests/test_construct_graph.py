"""construct_graph.py end to end: the dataset directory, its manifest, and every bad input."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import construct_graph
from glassgnn import schema
from glassgnn.dataset import (
    build_graphs,
    build_graphs_and_labels,
    load_graph_targets,
    load_manifest,
    load_split,
    load_split_labels,
)
from glassgnn.manifest import Normalisation
from tests.conftest import CUZR_DIR, REPO, requires_cuzr
from tests.reader_fixtures import configuration, write_bapst, write_lammps, write_npz, write_symgnn


def run(*argv) -> dict:
    return construct_graph.main([str(a) for a in argv])


def _edges(graph):
    src, dst = graph.edges()
    return torch.cat([src[:, None], dst[:, None], graph.edata[schema.DISP]], dim=1)


@requires_cuzr
def test_cuzr_contract_command(tmp_path):
    out = tmp_path / "cuzr"
    command = [
        sys.executable,
        "construct_graph.py",
        "--train",
        str(CUZR_DIR / "train0.pickle"),
        "--val",
        str(CUZR_DIR / "train6.pickle"),
        "--format",
        "auto",
        "--cutoff",
        "5.0",
        "--output_dir",
        str(out),
    ]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    manifest = load_manifest(out)
    assert manifest.splits["train"]["graphs"][0]["num_edges"] == 259838
    assert manifest.type_map == {"1": 0, "2": 1} and manifest.num_types == 2
    assert manifest.target_names == ["trajectory_start_velocities"]
    assert manifest.extra_fields == {"pot": 1, "press": 1, "von": 1}
    with open(CUZR_DIR / "train0.pickle", "rb") as handle:
        barrier = pickle.load(handle)["trajectory_start_velocities"].astype(np.float64)
    np.testing.assert_allclose(manifest.normalisation.mean, [barrier.mean()], rtol=1e-6)
    np.testing.assert_allclose(manifest.normalisation.std, [barrier.std()], rtol=1e-5)
    assert len(manifest.inputs) == 2 and all(len(i["sha256"]) == 64 for i in manifest.inputs)
    (graph,) = load_split(out, "train")
    assert graph.num_edges() == 259838 and graph.ndata[schema.MASK].dtype == torch.bool
    assert graph.ndata[schema.POS].min() >= 0 and graph.edata[schema.DIST].max() < 5.0
    assert load_split(out, "test") == [] and (out / "test.bin").exists()
    assert load_split_labels(out, "val")[schema.CUTOFF].tolist() == [5.0]


def test_bapst_mask_time_index_and_normalisation_from_train(tmp_path):
    write_bapst(tmp_path / "a.pickle")
    write_bapst(tmp_path / "b.pickle", with_targets_key=True)
    out = tmp_path / "ds"
    manifest = run(
        "--train",
        tmp_path / "a.pickle",
        "--test",
        tmp_path / "b.pickle",
        "--cutoff",
        "4",
        "--time_index",
        "0",
        "--output_dir",
        out,
    )
    assert manifest.target_names == ["propensity_0"]
    assert manifest.graph["mask_types"] == ["0"] and manifest.graph["time_index"] == 0
    (graph,) = load_split(out, "train")
    assert graph.ndata[schema.MASK].tolist() == [True, False]  # type A only, as Bapst et al.
    # mean over the masked particle (7/3) only; its std is 0 and is stored as 1
    assert manifest.normalisation == Normalisation(mean=[pytest.approx(7 / 3)], std=[1.0])
    assert load_split(out, "test")[0].ndata[schema.TARGET][:, 0].tolist() == pytest.approx([7 / 3, 1.0])
    everyone = run(
        "--train",
        tmp_path / "a.pickle",
        "--cutoff",
        "4",
        "--mask_types",
        "all",
        "--output_dir",
        tmp_path / "all",
    )
    assert everyone.normalisation.mean == pytest.approx([(7 / 3 + 1) / 2, 2.0])


def test_target_and_extra_fields_and_rebuild(tmp_path):
    write_symgnn(tmp_path / "a.pickle", seed=1)
    write_symgnn(tmp_path / "b.pickle", seed=2)
    out = tmp_path / "ds"
    manifest = run(
        "--train",
        tmp_path / "a.pickle",
        "--val",
        tmp_path / "b.pickle",
        "--cutoff",
        "3.0",
        "--target",
        "pot",
        "--self_loops",
        "--output_dir",
        out,
    )
    assert manifest.target_names == ["pot"] and manifest.graph["target"] == "pot"
    assert manifest.task == "node" and manifest.graph_target_names == []
    assert sorted(manifest.extra_fields) == ["press", "trajectory_start_velocities", "von"]
    (graph,) = load_split(out, "train")
    with open(tmp_path / "a.pickle", "rb") as handle:
        data = pickle.load(handle)
    np.testing.assert_allclose(graph.ndata[schema.TARGET][:, 0], data["pot"])
    np.testing.assert_allclose(
        graph.ndata["x_trajectory_start_velocities"], data["trajectory_start_velocities"]
    )
    # predict.py's path: rebuild with the manifest's parameters gives identical graphs
    (rebuilt,) = build_graphs([tmp_path / "b.pickle"], manifest.graph, type_map=manifest.type_map)
    (saved,) = load_split(out, "val")
    assert torch.equal(_edges(rebuilt), _edges(saved))
    for key in saved.ndata:
        assert torch.equal(rebuilt.ndata[key], saved.ndata[key]), key


def test_type_map_is_the_union_over_files(tmp_path):
    positions, types, values = configuration(0)
    write_npz(tmp_path / "ones.npz", positions, np.ones_like(types), values)
    write_npz(tmp_path / "mixed.npz", positions, types + 1, values)  # labels 2 and 3
    manifest = run(
        "--train",
        tmp_path / "ones.npz",
        "--val",
        tmp_path / "mixed.npz",
        "--cutoff",
        "2.5",
        "--output_dir",
        tmp_path / "ds",
    )
    assert manifest.type_map == {"1": 0, "2": 1, "3": 2}
    (val,) = load_split(tmp_path / "ds", "val")
    np.testing.assert_array_equal(val.ndata[schema.TYPE].numpy(), types)  # labels 2, 3 -> 1, 2


def test_knn_pair_cutoffs_and_val_fraction_on_a_lammps_trajectory(tmp_path):
    path = tmp_path / "run.dump"
    write_lammps(path, [configuration(seed) for seed in range(5)])
    knn_args = ["--train", path, "--knn", "6", "--target", "c_propensity", "--val_fraction", "0.4"]
    knn = run(*knn_args, "--seed", "3", "--output_dir", tmp_path / "knn")
    assert len(knn.splits["train"]["graphs"]) == 3 and len(knn.splits["val"]["graphs"]) == 2
    again = run(*knn_args, "--seed", "3", "--output_dir", tmp_path / "again", "--num_workers", "2")
    assert again.splits == knn.splits
    graph = load_split(tmp_path / "knn", "train")[0]
    assert graph.in_degrees().tolist() == [6] * graph.num_nodes()
    assert load_split_labels(tmp_path / "knn", "train")[schema.CUTOFF].tolist() == [0.0] * 3
    pair = run(
        "--train", path, "--cutoff", "2.0", "--pair_cutoff", "1-2=3.0", "--output_dir", tmp_path / "pair"
    )
    graph = load_split(tmp_path / "pair", "train")[0]
    types = graph.ndata[schema.TYPE]
    src, dst = graph.edges()
    dist = graph.edata[schema.DIST][:, 0]
    mixed = types[src] != types[dst]
    assert dist[mixed].max() > 2.0 and dist[mixed].max() < 3.0 and dist[~mixed].max() < 2.0
    assert pair.graph["pair_cutoffs"] == {"1-2": 3.0}


def test_isolated_atoms_counted(tmp_path, caplog):
    positions = np.array([[1.0, 1, 1], [2.0, 1, 1], [10.0, 10, 10]])
    write_npz(
        tmp_path / "sparse.npz", positions, np.array([1, 1, 2]), np.zeros(3), box=np.array([20.0, 20, 20])
    )
    manifest = run("--train", tmp_path / "sparse.npz", "--cutoff", "2", "--output_dir", tmp_path / "ds")
    assert manifest.splits["train"]["graphs"][0]["isolated"] == 1
    assert "1 atoms have no neighbour" in caplog.text


def test_existing_output_refused_unless_overwrite(tmp_path, capsys):
    write_symgnn(tmp_path / "a.pickle")
    args = ["--train", tmp_path / "a.pickle", "--cutoff", "3", "--output_dir", tmp_path / "ds"]
    run(*args)
    before = (tmp_path / "ds" / "manifest.json").read_text()
    with pytest.raises(SystemExit) as exit_info:
        run(*args)
    assert "already exists" in str(exit_info.value.code)
    assert (tmp_path / "ds" / "manifest.json").read_text() == before
    run(*args, "--overwrite", "--self_loops")
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["graph"]["self_loops"] is True


def _bad_inputs(tmp_path):
    """name -> (file to pass, words expected in the message, extra CLI args)."""
    valid = tmp_path / "valid.pickle"
    write_symgnn(valid)
    blob = valid.read_bytes()
    (tmp_path / "truncated.pickle").write_bytes(blob[: len(blob) // 2])
    (tmp_path / "corrupt.pickle").write_bytes(b"\x80\x04not a pickle at all" * 10)
    (tmp_path / "empty.pickle").write_bytes(b"")
    (tmp_path / "empty.dump").write_text("")
    (tmp_path / "notes.txt").write_text("hello\n")
    write_symgnn(tmp_path / "missing.pickle", box=None)
    write_symgnn(tmp_path / "mismatch.pickle", types=np.ones(29, dtype=np.int32))
    write_symgnn(
        tmp_path / "target_mismatch.pickle", trajectory_start_velocities=np.ones(29, dtype=np.float32)
    )
    nan = np.random.default_rng(0).uniform(size=(30, 3))
    nan[3, 1] = np.nan
    write_symgnn(tmp_path / "nan.pickle", positions=nan)
    write_symgnn(tmp_path / "inf.pickle", pot=np.full(30, np.inf, dtype=np.float32))
    write_symgnn(tmp_path / "zero_box.pickle", box=np.array([9.0, 0.0, 7.0]))
    write_symgnn(tmp_path / "negative_box.pickle", box=np.array([9.0, -8.0, 7.0]))
    positions, types, values = configuration(0)
    flat = np.array([[5.0, 0, 0], [0, 5.0, 0], [5.0, 5.0, 0]])
    write_npz(tmp_path / "degenerate.npz", positions, types, values, box=flat)
    write_bapst(tmp_path / "ka.pickle")
    write_lammps(tmp_path / "truncated.dump", [configuration(0)])
    lines = (tmp_path / "truncated.dump").read_text().splitlines()
    (tmp_path / "truncated.dump").write_text("\n".join(lines[:-5]) + "\n")
    return {
        "truncated pickle": ("truncated.pickle", "truncated or corrupt pickle", []),
        "corrupt pickle": ("corrupt.pickle", "truncated or corrupt pickle", []),
        "empty pickle": ("empty.pickle", "empty file", []),
        "empty dump": ("empty.dump", "empty file", []),
        "unknown format": ("notes.txt", "unknown format", []),
        "missing key": ("missing.pickle", "missing key(s) ['box']", []),
        "shape mismatch types": ("mismatch.pickle", "shape mismatch", []),
        "shape mismatch target": ("target_mismatch.pickle", "shape mismatch", []),
        "nan positions": ("nan.pickle", "NaN or inf", []),
        "inf field": ("inf.pickle", "NaN or inf", []),
        "zero box": ("zero_box.pickle", "non-positive box", []),
        "negative box": ("negative_box.pickle", "non-positive box", []),
        "degenerate cell": ("degenerate.npz", "degenerate cell", []),
        "truncated dump": ("truncated.dump", "truncated", []),
        "unknown target": ("valid.pickle", "no field 'energy'", ["--target", "energy"]),
        "cutoff zero": ("valid.pickle", "cutoff must be a positive", ["--cutoff", "0"]),
        "cutoff negative": ("valid.pickle", "cutoff must be a positive", ["--cutoff", "-2"]),
        "no glob match": ("nothing_*.pickle", "no input matched --train", []),
        "unknown mask type": ("valid.pickle", "type label(s) ['7'] not found", ["--mask_types", "7"]),
        "missing graph target": (
            "valid.pickle",
            "graph target 'energy' is missing",
            ["--graph_target", "energy"],
        ),
        "non-numeric graph target": (
            "ka.pickle",
            "graph target 'fluid' is not a number",
            ["--graph_target", "fluid"],
        ),
    }


BAD = [
    "truncated pickle",
    "corrupt pickle",
    "empty pickle",
    "empty dump",
    "unknown format",
    "missing key",
    "shape mismatch types",
    "shape mismatch target",
    "nan positions",
    "inf field",
    "zero box",
    "negative box",
    "degenerate cell",
    "truncated dump",
    "unknown target",
    "cutoff zero",
    "cutoff negative",
    "no glob match",
    "unknown mask type",
    "missing graph target",
    "non-numeric graph target",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_one_line_error_and_nothing_written(tmp_path, case):
    name, words, extra = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    args = ["--train", tmp_path / name, "--cutoff", "3.0", *extra, "--output_dir", out]
    if extra[:1] == ["--cutoff"]:
        args = ["--train", tmp_path / name, *extra, "--output_dir", out]
    with pytest.raises(SystemExit) as exit_info:
        run(*args)
    message = str(exit_info.value.code)
    assert exit_info.value.code not in (0, None)
    assert words in message and "\n" not in message
    if case not in ("cutoff zero", "cutoff negative", "unknown mask type"):
        assert name in message  # names the file
    assert not out.exists() and not list(tmp_path.glob(".out.*"))  # nothing half-written


def test_bad_input_in_a_worker_process_gives_the_same_one_line_error(tmp_path):
    write_symgnn(tmp_path / "good.pickle")
    (tmp_path / "bad.pickle").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        run(
            "--train",
            tmp_path / "good.pickle",
            tmp_path / "bad.pickle",
            "--cutoff",
            "3",
            "--num_workers",
            "2",
            "--output_dir",
            tmp_path / "out",
        )
    assert str(exit_info.value.code).endswith("bad.pickle: empty file")
    assert not (tmp_path / "out").exists()


def test_graph_targets_round_trip_with_train_only_normalisation(tmp_path):
    temperatures = {"train": [0.5, 0.6, 0.9], "val": [0.7], "test": [0.8]}
    files = {}
    for split, values in temperatures.items():
        files[split] = []
        for i, temperature in enumerate(values):
            path = tmp_path / f"{split}{i}.npz"
            write_npz(path, *configuration(i), temperature=temperature, energy=-2.0 * temperature)
            files[split].append(path)
    out = tmp_path / "ds"
    manifest = run(
        *("--train", *files["train"], "--val", *files["val"], "--test", *files["test"]),
        *("--cutoff", "3.0", "--graph_target", "temperature", "energy", "--output_dir", out),
    )
    train = np.array([[t, -2.0 * t] for t in temperatures["train"]])
    assert manifest.task == "graph" and manifest.graph_target_names == ["temperature", "energy"]
    np.testing.assert_allclose(manifest.graph_normalisation.mean, train.mean(0))
    np.testing.assert_allclose(manifest.graph_normalisation.std, train.std(0))
    assert manifest.splits["test"]["graph_target_stats"]["temperature"]["mean"] == 0.8
    assert load_manifest(out) == manifest
    stored = load_graph_targets(out)
    for split, values in temperatures.items():
        expected = torch.tensor([[t, -2.0 * t] for t in values], dtype=torch.float32)
        assert torch.equal(load_split_labels(out, split)[schema.GRAPH_TARGET], expected)
        assert torch.equal(stored[split], expected)
    # predict.py's path: rebuilding with the manifest's parameters gives the same labels
    graphs, labels = build_graphs_and_labels(files["test"], manifest.graph, type_map=manifest.type_map)
    assert torch.equal(labels[schema.GRAPH_TARGET], stored["test"]) and len(graphs) == 1
    # a file without the value: an error naming that file for the dataset, NaN for prediction
    write_npz(tmp_path / "plain.npz", *configuration(7))
    with pytest.raises(SystemExit, match=r"plain\.npz: frame 0: graph target 'temperature' is missing"):
        run(
            "--train",
            *files["train"],
            tmp_path / "plain.npz",
            "--cutoff",
            "3",
            "--graph_target",
            "temperature",
            "--output_dir",
            tmp_path / "bad",
        )
    assert not (tmp_path / "bad").exists()
    _, labels = build_graphs_and_labels([tmp_path / "plain.npz"], manifest.graph, manifest.type_map)
    assert torch.isnan(labels[schema.GRAPH_TARGET]).all()


def test_graph_targets_of_lammps_frames_from_a_side_table(tmp_path):
    write_lammps(tmp_path / "a.dump", [configuration(0), configuration(1)])
    write_lammps(tmp_path / "b.dump", [configuration(2)])
    (tmp_path / "values.csv").write_text("file,frame,temperature\na.dump,0,0.4\na.dump,1,0.5\nb.dump,,0.6\n")
    out = tmp_path / "ds"
    manifest = run(
        *("--train", tmp_path / "a.dump", "--val", tmp_path / "b.dump", "--cutoff", "3"),
        *(
            "--graph_target",
            "temperature",
            "--graph_target_csv",
            tmp_path / "values.csv",
            "--output_dir",
            out,
        ),
    )
    assert manifest.graph["graph_target_csv"] == str(tmp_path / "values.csv")
    assert load_split_labels(out, "train")[schema.GRAPH_TARGET][:, 0].tolist() == pytest.approx([0.4, 0.5])
    assert load_split_labels(out, "val")[schema.GRAPH_TARGET][:, 0].tolist() == pytest.approx([0.6])
    (tmp_path / "values.csv").write_text("file,frame,temperature\na.dump,0,0.4\na.dump,1,hot\n")
    with pytest.raises(
        SystemExit, match=r"a\.dump: frame 1: graph target 'temperature' is not a number: 'hot'"
    ):
        run(
            *("--train", tmp_path / "a.dump", "--cutoff", "3", "--graph_target", "temperature"),
            *("--graph_target_csv", tmp_path / "values.csv", "--output_dir", tmp_path / "bad"),
        )
