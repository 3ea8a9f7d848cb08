"""predict.py end to end on small trained runs: same graphs, same numbers as training.

Node runs give one row per particle of every frame (several files, multi-frame LAMMPS
dumps), graph runs one row per snapshot; targets are named by the columns actually read
(the time index asked for); a failing ``torch.compile`` falls back to eager.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import yaml

import construct_graph
import predict
import train
from glassgnn import schema
from glassgnn.dataset import load_split, load_split_labels
from glassgnn.readers import read_snapshots
from glassgnn.run import load_run
from tests.conftest import REPO
from tests.reader_fixtures import configuration, write_lammps
from tests.reader_fixtures import write_npz as write_npz_frame
from tests.synthetic import BOX, CUTOFF, synthetic_config, write_density_dataset

DEEPMIND_RUN = REPO / "datasets" / "deepmind" / "t044_s09"
TEST_SMALL = REPO / "datasets" / "deepmind" / "test_small.pickle"


def _write_npz(path, seed, labels=(1, 2)):
    """A synthetic configuration as an npz input file, types written as ``labels``."""
    positions, types, _, target = synthetic_config(seed)
    np.savez(path, positions=positions, types=np.asarray(labels)[types], box=np.full(3, BOX), targets=target)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny graphs: one thread is faster on a shared machine
    root = tmp_path_factory.mktemp("predict")
    files = [str(_write_npz(root / f"conf{i}.npz", i)) for i in range(5)]
    construct_graph.main(
        [
            "--train",
            *files[:3],
            "--val",
            files[3],
            "--test",
            files[4],
            "--cutoff",
            str(CUTOFF),
            "--output_dir",
            str(root / "ds"),
        ]
    )
    train.main(
        [
            f"--dataset_dir={root / 'ds'}",
            "--model_name=schnet",
            f"--output_dir={root / 'run'}",
            "--max_epoch=3",
            "--model_config_path",
            str(REPO / "train.conf.yaml"),
        ]
    )
    yield root, files
    torch.set_num_threads(threads)


def test_predictions_equal_training_outputs_and_metrics(trained):
    root, files = trained
    out = root / "test.npz"
    metrics = predict.main(
        ["--run_dir", str(root / "run"), "--input", files[4], "--output", str(out), "--csv"]
    )
    ours = np.load(out)
    saved = np.load(root / "run" / "predictions_test.npz")
    np.testing.assert_allclose(ours["pred"], saved["pred"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ours["atom"], saved["atom"])
    np.testing.assert_array_equal(ours["type_label"], np.where(saved["type"] == 0, "1", "2"))
    results = json.loads((root / "run" / "results.json").read_text())
    assert metrics["targets"]["all"]["pearson"] == pytest.approx(
        results["metrics"]["test"]["targets"]["all"]["pearson"], abs=1e-5
    )
    assert json.loads(out.with_suffix(".metrics.json").read_text()).keys() == metrics.keys()
    assert len(out.with_suffix(".csv").read_text().splitlines()) == 1 + len(ours["atom"])


def test_run_predict_rebuilds_the_dataset_graphs_exactly(trained):
    root, _ = trained
    run = load_run(root / "run")
    graph = load_split(root / "ds", "test")[0]
    saved = np.load(root / "run" / "predictions_test.npz")
    np.testing.assert_allclose(run.predict(graph).numpy(), saved["pred"], rtol=1e-5, atol=1e-6)


def test_several_inputs_frame_by_frame_and_refusals(trained, capsys):
    root, files = trained
    out = root / "many.npz"
    predict.main(
        ["--run_dir", str(root / "run"), "--input", str(root / "conf[34].npz"), "--output", str(out)]
    )
    arrays = np.load(out)
    assert len(arrays["pred"]) == 2 * 48
    assert sorted(set(arrays["source"])) == sorted(files[3:5])
    with pytest.raises(SystemExit) as exc:  # never over an existing output
        predict.main(["--run_dir", str(root / "run"), "--input", files[3], "--output", str(out)])
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err
    alien = _write_npz(root / "alien.npz", 9, labels=(1, 3))
    with pytest.raises(SystemExit):
        predict.main(["--run_dir", str(root / "run"), "--input", str(alien), "--output", str(root / "a.npz")])
    assert "not in the dataset's type map" in capsys.readouterr().err
    assert not (root / "a.npz").exists()


def test_multi_frame_lammps_dump_equals_one_file_per_frame(trained, tmp_path):
    root, _ = trained
    frames = [configuration(seed, n_atoms=30) for seed in range(3)]
    write_lammps(tmp_path / "traj.dump", frames)
    for k, frame in enumerate(frames):
        write_npz_frame(tmp_path / f"frame{k}.npz", *frame)
    run = ["--run_dir", str(root / "run"), "--format", "auto", "--no_progress"]
    predict.main([*run, "--input", str(tmp_path / "traj.dump"), "--output", str(tmp_path / "dump.npz")])
    predict.main([*run, "--input", str(tmp_path / "frame*.npz"), "--output", str(tmp_path / "files.npz")])
    dump, files = np.load(tmp_path / "dump.npz"), np.load(tmp_path / "files.npz")
    assert list(dump["frame"]) == [k for k in range(3) for _ in range(30)] and set(dump["source"]) == {
        str(tmp_path / "traj.dump")
    }
    assert len(set(files["source"])) == 3 and list(files["frame"]) == [0] * 90
    np.testing.assert_allclose(dump["pred"], files["pred"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(dump["type_label"], files["type_label"])


def test_time_index_names_the_targets_actually_compared(tmp_path, capsys, caplog):
    """The run learned propensity_0; asked for index 9, targets and metrics say propensity_9."""
    out = tmp_path / "t9.npz"
    argv = ["--run_dir", str(DEEPMIND_RUN), "--input", str(TEST_SMALL), "--output", str(out), "--csv"]
    metrics = predict.main([*argv, "--time_index", "9", "--threads", "1"])
    arrays = np.load(out)
    assert list(metrics) == ["propensity_9"] and list(arrays["target_names"]) == ["propensity_9"]
    assert list(arrays["pred_names"]) == ["propensity_0"]
    expected = read_snapshots(TEST_SMALL, "bapst", time_index=9)[0].fields["propensity"][:, 0]
    np.testing.assert_allclose(arrays["target"][:, 0], expected, rtol=1e-6)
    assert (
        out.with_suffix(".csv")
        .read_text()
        .splitlines()[0]
        .endswith("pred_propensity_0,target_propensity_9,mask")
    )
    assert "propensity_9 all (n=" in capsys.readouterr().out
    assert "propensity_0 predictions with the inputs' propensity_9" in caplog.text
    default = predict.main([*argv[:4], "--output", str(tmp_path / "t0.npz")])  # the run's own index
    assert list(default) == ["propensity_0"]


def test_compile_failure_falls_back_to_eager(tmp_path, monkeypatch, caplog):
    argv = ["--run_dir", str(DEEPMIND_RUN), "--input", str(TEST_SMALL), "--no_progress", "--threads", "1"]
    predict.main([*argv, "--no-compile", "--output", str(tmp_path / "eager.npz")])

    def broken(*args, **kwargs):
        raise RuntimeError("inductor: no working C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING):
        predict.main([*argv, "--compile", "always", "--output", str(tmp_path / "compiled.npz")])
    assert any(
        "running eagerly" in r.getMessage() and "C++ compiler" in r.getMessage() for r in caplog.records
    )
    np.testing.assert_array_equal(
        np.load(tmp_path / "compiled.npz")["pred"], np.load(tmp_path / "eager.npz")["pred"]
    )


def test_graph_run_writes_one_row_per_snapshot(tmp_path, caplog):
    write_density_dataset(tmp_path, np.random.default_rng(0), {"train": 6, "val": 2, "test": 3})
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump({"mlp": {"hidden_dims": [8]}}))
    train.main(
        [
            "--model_name=mlp",
            f"--dataset_dir={tmp_path / 'ds'}",
            f"--output_dir={tmp_path / 'run'}",
            f"--model_config_path={tmp_path / 'conf.yaml'}",
            "--max_epoch=2",
        ]
    )
    out = tmp_path / "graphs.npz"
    tests = sorted(str(p) for p in (tmp_path / "in").glob("test*.npz"))
    metrics = predict.main(
        ["--run_dir", str(tmp_path / "run"), "--input", *tests, "--output", str(out), "--csv"]
    )
    arrays, saved = np.load(out), np.load(tmp_path / "run" / "predictions_test.npz")
    assert (
        arrays["pred"].shape == (3, 1)
        and list(arrays["source"]) == tests
        and list(arrays["frame"]) == [0] * 3
    )
    np.testing.assert_allclose(arrays["pred"], saved["pred"], rtol=1e-5, atol=1e-6)
    truth = load_split_labels(tmp_path / "ds", "test")[schema.GRAPH_TARGET].numpy()
    np.testing.assert_array_equal(arrays["target"], truth)
    assert list(arrays["num_atoms"]) == [g.num_nodes() for g in load_split(tmp_path / "ds", "test")]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert metrics["coordination"]["all"]["r2"] == pytest.approx(
        results["metrics"]["test"]["coordination"]["all"]["r2"], abs=1e-5
    )
    lines = out.with_suffix(".csv").read_text().splitlines()
    assert lines[0] == "source,frame,num_atoms,pred_coordination,target_coordination" and len(lines) == 4
    # a snapshot without the value: predictions, no metrics
    positions, types, _ = configuration(0, n_atoms=20)
    np.savez(tmp_path / "bare.npz", positions=positions, types=types, box=np.full(3, 9.0))
    bare = predict.main(
        [
            "--run_dir",
            str(tmp_path / "run"),
            "--input",
            str(tmp_path / "bare.npz"),
            "--output",
            str(tmp_path / "bare_out.npz"),
        ]
    )
    assert bare is None and np.load(tmp_path / "bare_out.npz")["pred"].shape == (1, 1)
    assert (
        f"no metrics: {tmp_path / 'bare.npz'} frame 0 has no value for the graph target(s) coordination"
        in (caplog.text)
    )
