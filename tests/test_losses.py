"""The training losses (glassgnn/losses.py) and training with ``loss: centred_mse``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from glassgnn.config import resolve
from glassgnn.losses import centred_mse, masked_mse
from glassgnn.training import fit

SIZES = (5, 7, 4)


def _batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    n = sum(SIZES)
    pred, target = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    mask = rng.random(n) < 0.7
    mask[[0, 5, 12]] = True  # every snapshot has masked particles
    return pred, target, mask


def _reference(pred, target, mask):
    """numpy: per snapshot, the masked errors minus their mean, squared and averaged over all."""
    squares = []
    for rows in np.split(np.arange(len(pred)), np.cumsum(SIZES)[:-1]):
        rows = rows[mask[rows]]
        error = pred[rows] - target[rows]
        squares.append((error - error.mean(axis=0)) ** 2)
    return np.concatenate(squares).mean()


def _centred(pred, target, mask):
    tensors = (torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask))
    return float(centred_mse(*tensors, torch.tensor(SIZES)))


def test_centred_mse_equals_numpy_and_ignores_a_shift_per_snapshot():
    pred, target, mask = _batch()
    assert _centred(pred, target, mask) == pytest.approx(_reference(pred, target, mask), rel=1e-12)
    shift = np.repeat(np.random.default_rng(1).normal(size=(len(SIZES), 2)) * 5, SIZES, axis=0)
    assert _centred(pred + shift, target, mask) == pytest.approx(_centred(pred, target, mask), rel=1e-12)
    plain = float(masked_mse(*(torch.from_numpy(a) for a in (pred + shift, target, mask))))
    assert plain > 2 * _centred(pred, target, mask)  # the plain MSE sees the shift


def test_centred_mse_of_errors_without_a_snapshot_mean_is_the_plain_mse():
    pred, target, mask = _batch(2)
    for rows in np.split(np.arange(len(pred)), np.cumsum(SIZES)[:-1]):
        rows = rows[mask[rows]]
        pred[rows] -= (pred[rows] - target[rows]).mean(axis=0)
    plain = float(masked_mse(*(torch.from_numpy(a) for a in (pred, target, mask))))
    assert _centred(pred, target, mask) == pytest.approx(plain, rel=1e-12)


def test_centred_mse_keeps_the_graph_without_masked_rows():
    pred = torch.ones(4, 1, requires_grad=True)
    loss = centred_mse(pred, torch.zeros(4, 1), torch.zeros(4, dtype=torch.bool), torch.tensor([4]))
    loss.backward()
    assert float(loss) == 0.0 and pred.grad is not None


def test_training_with_the_centred_loss_learns(data, tmp_path, one_thread):
    cfg = {"model_name": "mlp", "dataset_dir": "unused", "node_fields": ["cn"], "save_results": False}
    cfg = resolve({**cfg, "loss": "centred_mse", "max_epoch": 12, "eval_interval": 2, "learning_rate": 3e-3})
    results = fit(cfg, *data, tmp_path / "run")
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header, first, last = lines[0].split(","), lines[1].split(","), lines[-1].split(",")
    column = {name: i for i, name in enumerate(header)}
    assert float(last[column["epoch_loss"]]) < 0.5 * float(first[column["epoch_loss"]])
    assert results["metrics"]["test"]["y"]["all"]["pearson"] > 0.9
