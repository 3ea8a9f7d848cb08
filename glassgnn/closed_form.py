"""Closed-form ridge fits: the ``ridge`` model, and the floor under ``baseline: ridge``.

The fit reads the same node inputs and standardised targets as gradient training
(:class:`glassgnn.task.Task`) over the masked training particles, solves for every
strength of the model's ``alphas`` and keeps the one whose validation
``selection_metric`` is best: selection on validation only, like every run.
"""

from __future__ import annotations

import torch

from glassgnn.config import SELECTION_METRICS
from glassgnn.distributed import DistInfo
from glassgnn.evaluation import evaluate, headline_of, predict_split
from glassgnn.metrics import METRICS
from glassgnn.task import Task
from models.ridge import NormalEquations, Ridge


def normal_equations(task: Task, in_dim: int, device: torch.device) -> NormalEquations:
    """Normal equations of the masked training particles (inputs and standardised targets)."""
    equations = NormalEquations(in_dim, len(task.columns))
    for graph in task.graphs["train"]:
        graph = graph.to(device)
        target, mask = task.batch_targets(graph, "train", [0])
        equations.add(task.features(graph)[mask], target[mask])
    return equations


def fit_ridge(ridge: Ridge, task: Task, cfg: dict, device: torch.device, info: DistInfo) -> list[dict]:
    """Fit ``ridge`` for each of its alphas, keep the best on validation; one history row per alpha.

    Returns:
        Rows ``{"alpha", "train_loss", "train_<metric>", ..., "val_<metric>", ...}`` in the
        order of the alphas tried; the model holds the selected solution afterwards.
    """
    if task.level != "node":
        raise ValueError("ridge fits per-particle targets only (task node)")
    metric = cfg["selection_metric"]
    maximise = SELECTION_METRICS[metric]
    rows, best = [], None
    for alpha, weight, bias in ridge.solutions(normal_equations(task, ridge.linear.in_features, device)):
        ridge.set_solution(alpha, weight, bias)
        row: dict = {"alpha": alpha}
        for split in ("train", "val"):
            result = evaluate(predict_split(ridge, task, split, cfg["batch_size"], device, info), task, split)
            row[f"{split}_loss"] = result["loss"]
            row.update({f"{split}_{m}": headline_of(result, m) for m in METRICS})
        rows.append(row)
        value = row[f"val_{metric}"]
        if value == value and (best is None or (value > best[0] if maximise else value < best[0])):
            best = (value, alpha, weight, bias)
    if best is None:
        raise ValueError(f"ridge: validation {metric} is NaN for every alpha")
    ridge.set_solution(*best[1:])
    return rows
