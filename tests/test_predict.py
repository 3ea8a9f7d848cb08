"""predict.py end to end on a small trained run: same graphs, same numbers as training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import construct_graph
import predict
import train
from glassgnn.dataset import load_split
from glassgnn.run import load_run
from tests.conftest import REPO
from tests.synthetic import BOX, CUTOFF, synthetic_config


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
