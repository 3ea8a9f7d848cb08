"""Closed-form fits (``Ability.CLOSED_FORM_FIT``): the ``ridge`` model, and the floor under
``baseline: ridge``.

The model reads the same node inputs and standardised targets as gradient training
(:class:`glassgnn.task.Task`) over the masked training particles, tries each of its
candidate settings and keeps the one whose validation ``selection_metric`` is best:
selection on validation only, like every run.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from glassgnn.config import SELECTION_METRICS, ResolvedConfig
from glassgnn.distributed import DistInfo
from glassgnn.evaluation import metrics_row, selection_value
from glassgnn.task import Task
from models.contract import GlassModel


def training_rows(task: Task, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Per training graph: inputs [n_masked, in_dim] and standardised targets [n_masked, k]."""
    for graph in task.graphs["train"]:
        graph = graph.to(device)
        target, mask = task.batch_targets(graph, "train", [0])
        yield task.features(graph)[mask], target[mask]


def fit_closed_form(model: GlassModel, task: Task, cfg: ResolvedConfig, device, info: DistInfo) -> list[dict]:
    """Fit ``model`` in closed form, selected on validation; one history row per candidate.

    Args:
        cfg: the run's configuration (``selection_metric``, ``batch_size`` of evaluation).

    Returns:
        Rows ``{<setting>: value, "train_loss", "train_<metric>", ..., "val_<metric>", ...}``
        in the order the model tried its settings; the model holds the selected one afterwards.
    """
    if task.kind.per_graph:
        raise ValueError("closed-form fits learn per-particle targets only (task node)")
    metric = cfg.selection_metric
    sign = 1.0 if SELECTION_METRICS[metric] else -1.0
    rows: list[dict] = []

    def score() -> float:
        splits = [("train", "train"), ("val", "val")]
        rows.append(metrics_row(model, task, splits, cfg.batch_size, device, info))
        return sign * selection_value(rows[-1], metric)

    tried = model.fit_closed_form(training_rows(task, device), score)
    return [
        {**{k: v for k, v in setting.items() if k != "score"}, **row}
        for setting, row in zip(tried, rows, strict=True)
    ]
