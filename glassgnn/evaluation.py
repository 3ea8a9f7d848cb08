"""Evaluation of a model on a split: predictions gathered from all ranks, loss and metrics."""

from __future__ import annotations

import dgl
import numpy as np
import torch

from glassgnn import distributed
from glassgnn.distributed import DistInfo
from glassgnn.metrics import METRICS, headline
from glassgnn.task import Task


@torch.no_grad()
def predict_split(
    module, task: Task, split: str, batch_size: int, device, info: DistInfo
) -> list[np.ndarray]:
    """Predictions in original units for every graph of ``split``, on every rank.

    Returns one array per graph: [n_atoms_i, k] for a node task, [1, k] for a graph task.
    """
    module.eval()
    graphs = task.graphs[split]
    mine = list(range(len(graphs)))[info.rank :: info.world_size]
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(mine), batch_size):
        ids = mine[start : start + batch_size]
        batch = dgl.batch([graphs[i] for i in ids]).to(device)
        pred = task.denormalise(module(graph=batch, feat=task.features(batch))).cpu().numpy()
        sizes = task.kind.rows_per_graph(batch)
        out.update(zip(ids, np.split(pred, np.cumsum(sizes)[:-1]), strict=True))
    for part in distributed.gather_objects(out, info):
        out.update(part)
    return [out[i] for i in range(len(graphs))]


def evaluate(preds: list[np.ndarray], task: Task, split: str) -> dict:
    """MSE (normalised units) and metrics in original units: per target and particle type on the
    masked particles (node task), or per target across graphs (graph task)."""
    return task.kind.evaluate(np.concatenate(preds), task, split)


def headline_of(result: dict, metric: str) -> float:
    """The number used for selection: the loss, or ``metric`` overall averaged over targets."""
    if metric == "loss":
        return result["loss"]
    return headline({k: v for k, v in result.items() if k != "loss"}, metric)


def selection_value(row: dict, metric: str) -> float:
    """The validation figure a metrics row is selected by: ``val_loss`` or ``val_<metric>``."""
    return row["val_loss"] if metric == "loss" else row[f"val_{metric}"]


def metrics_row(module, task: Task, splits: list[tuple[str, str]], batch_size: int, device, info) -> dict:
    """Loss and headline metrics of ``module`` on each ``(split, name)``, as ``{name}_loss``,
    ``{name}_<metric>``: the columns of metrics.csv."""
    row: dict = {}
    for split, name in splits:
        result = evaluate(predict_split(module, task, split, batch_size, device, info), task, split)
        row[f"{name}_loss"] = result["loss"]
        row.update({f"{name}_{m}": headline_of(result, m) for m in METRICS})
    return row
