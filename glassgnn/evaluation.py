"""Evaluation of a model on a split: predictions gathered from all ranks, loss and metrics."""

from __future__ import annotations

import math

import dgl
import numpy as np
import torch

from glassgnn import distributed, schema
from glassgnn.distributed import DistInfo
from glassgnn.metrics import graph_metrics, grouped_metrics, headline
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
        if task.level == "graph":
            out.update(zip(ids, np.split(pred, len(ids)), strict=True))
        else:
            sizes = batch.batch_num_nodes().cpu().numpy()
            out.update(zip(ids, np.split(pred, np.cumsum(sizes)[:-1]), strict=True))
    for part in distributed.gather_objects(out, info):
        out.update(part)
    return [out[i] for i in range(len(graphs))]


def evaluate(preds: list[np.ndarray], task: Task, split: str) -> dict:
    """MSE (normalised units) and metrics in original units: per target and particle type on the
    masked particles (node task), or per target across graphs (graph task)."""
    graphs = task.graphs[split]
    pred = np.concatenate(preds)
    std = task.std.numpy()
    if task.level == "graph":
        true = task.graph_targets[split].numpy()
        loss = float((((pred - true) / std) ** 2).mean())
        return {"loss": loss, **graph_metrics(pred, true, task.target_names)}
    true = np.concatenate([task.targets(g).numpy() for g in graphs])
    mask = np.concatenate([g.ndata[schema.MASK].numpy() for g in graphs])
    types = np.concatenate([g.ndata[schema.TYPE].numpy() for g in graphs])
    loss = float((((pred - true) / std)[mask] ** 2).mean()) if mask.any() else math.nan
    metrics = grouped_metrics(pred, true, types, mask, task.target_names, task.type_names)
    return {"loss": loss, **metrics}


def headline_of(result: dict, metric: str) -> float:
    """The number used for selection: the loss, or ``metric`` overall averaged over targets."""
    if metric == "loss":
        return result["loss"]
    return headline({k: v for k, v in result.items() if k != "loss"}, metric)
