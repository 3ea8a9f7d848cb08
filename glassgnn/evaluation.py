"""Evaluation of a model on a split: predictions gathered from all ranks, loss and metrics."""

from __future__ import annotations

import math

import dgl
import numpy as np
import torch

from glassgnn import distributed, schema
from glassgnn.distributed import DistInfo
from glassgnn.metrics import grouped_metrics, headline
from glassgnn.task import Task


@torch.no_grad()
def predict_split(
    module, task: Task, split: str, batch_size: int, device, info: DistInfo
) -> list[np.ndarray]:
    """Predictions in original units for every graph of ``split`` ([n_i, k] each), on every rank."""
    module.eval()
    graphs = task.graphs[split]
    mine = list(range(len(graphs)))[info.rank :: info.world_size]
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(mine), batch_size):
        ids = mine[start : start + batch_size]
        batch = dgl.batch([graphs[i] for i in ids]).to(device)
        pred = task.denormalise(module(graph=batch, feat=task.features(batch))).cpu().numpy()
        sizes = batch.batch_num_nodes().cpu().numpy()
        out.update(zip(ids, np.split(pred, np.cumsum(sizes)[:-1]), strict=True))
    for part in distributed.gather_objects(out, info):
        out.update(part)
    return [out[i] for i in range(len(graphs))]


def evaluate(preds: list[np.ndarray], task: Task, split: str) -> dict:
    """Masked MSE (normalised units) and metrics per target and type (original units)."""
    graphs = task.graphs[split]
    pred = np.concatenate(preds)
    true = np.concatenate([task.targets(g).numpy() for g in graphs])
    mask = np.concatenate([g.ndata[schema.MASK].numpy() for g in graphs])
    types = np.concatenate([g.ndata[schema.TYPE].numpy() for g in graphs])
    std = task.std.numpy()
    loss = float((((pred - true) / std)[mask] ** 2).mean()) if mask.any() else math.nan
    metrics = grouped_metrics(pred, true, types, mask, task.target_names, task.type_names)
    return {"loss": loss, **metrics}


def headline_of(result: dict, metric: str) -> float:
    """The number used for selection: the loss, or ``metric`` overall averaged over targets."""
    if metric == "loss":
        return result["loss"]
    return headline({k: v for k, v in result.items() if k != "loss"}, metric)
