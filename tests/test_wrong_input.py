"""Wrong input is never accepted silently: types unseen in training, explain.py options
that make no sense, particles outside the mask, and predict.py inputs without the target."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import construct_graph
import explain
import predict
import train
from tests.conftest import REPO
from tests.synthetic import BOX, CUTOFF, synthetic_config

BUNDLED_RUN = REPO / "datasets" / "deepmind" / "t044_s09"


pytestmark = pytest.mark.usefixtures("one_thread")


def _npz(path, seed, labels=(1, 2), targets=True):
    positions, types, _, target = synthetic_config(seed)
    extra = {"targets": target} if targets else {}
    np.savez(path, positions=positions, types=np.asarray(labels)[types], box=np.full(3, BOX), **extra)
    return path


def test_a_type_label_unseen_in_training_is_named_with_its_files(tmp_path, caplog):
    train_files = [str(_npz(tmp_path / f"t{i}.npz", i)) for i in range(2)]
    val = _npz(tmp_path / "v.npz", 5, labels=(1, 3))
    with caplog.at_level(logging.WARNING):
        construct_graph.main(
            [
                "--train",
                *train_files,
                "--val",
                str(val),
                "--cutoff",
                str(CUTOFF),
                "--output_dir",
                str(tmp_path / "ds"),
            ]
        )
    assert f"type '3' appears in val ({val}) but in no training graph" in caplog.text


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["--epochs", "-3"], "argument --epochs: must be at least 1, got -3"),
        (["--top_k", "0"], "argument --top_k: must be at least 1, got 0"),
        (["--num_nodes", "0"], "argument --num_nodes: must be at least 1, got 0"),
    ],
)
def test_explain_refuses_meaningless_counts(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        explain.main(["--run_dir", str(BUNDLED_RUN), "--output_dir", str(tmp_path / "ex"), *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "ex").exists()


def test_explain_warns_about_a_particle_outside_the_mask(tmp_path, capsys):
    files = [str(_npz(tmp_path / f"c{i}.npz", i)) for i in range(3)]
    construct_graph.main(
        ["--train", files[0], "--val", files[1], "--test", files[2], "--cutoff", str(CUTOFF),
         "--mask_types", "1", "--output_dir", str(tmp_path / "ds")]
    )  # fmt: skip
    conf = REPO / "train.conf.yaml"
    train.main([f"--dataset_dir={tmp_path / 'ds'}", "--model_name=schnet", f"--output_dir={tmp_path / 'run'}",
                "--max_epoch=1", f"--model_config_path={conf}", "--no-save_results"])  # fmt: skip
    types = synthetic_config(2)[1]
    inside, outside = int(np.flatnonzero(types == 0)[0]), int(np.flatnonzero(types == 1)[0])
    capsys.readouterr()
    explain.main(["--run_dir", str(tmp_path / "run"), "--output_dir", str(tmp_path / "ex"), "--threads", "1",
                  "--nodes", str(inside), str(outside), "--epochs", "1", "--num_hops", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert f"explain.py: warning: particle(s) [{outside}] are outside the metrics mask" in err
    assert (tmp_path / "ex" / "summary.json").is_file()


def test_predict_says_which_target_is_missing(tmp_path, caplog):
    path = _npz(tmp_path / "new.npz", 0, labels=(0, 1), targets=False)
    with caplog.at_level(logging.WARNING):
        metrics = predict.main(
            ["--run_dir", str(BUNDLED_RUN), "--input", str(path), "--format", "npz", "--output",
             str(tmp_path / "p.npz"), "--no_progress"]
        )  # fmt: skip
    assert metrics is None
    assert (
        f"no metrics: the run learned propensity_0, but in {path} frame 0 it has no field 'propensity'"
        in caplog.text
    )
