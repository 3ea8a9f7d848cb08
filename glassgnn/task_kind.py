"""Node versus graph task: everything that differs between learning per-particle and per-snapshot targets.

* :data:`NODE`: targets are the columns of ``ndata[schema.TARGET]`` (manifest ``target_names``),
  one model output row per particle, loss and metrics over the masked particles;
* :data:`GRAPH`: targets are the columns of the split files' ``schema.GRAPH_TARGET`` label
  (manifest ``graph_target_names``, written by ``construct_graph.py --graph_target``),
  one output row per graph.

Training (:class:`glassgnn.task.Task`), the model's hyperparameters
(:func:`glassgnn.config.model_hparams`), evaluation, prediction, loading a run, repeated-run
summaries and the dataset writer ask the kind object (:func:`task_kind` looks it up by name)
instead of comparing task names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dgl
import numpy as np
import torch

from glassgnn import outputs, schema
from glassgnn.config import ConfigError
from glassgnn.manifest import Manifest, Normalisation
from glassgnn.metrics import graph_metrics, grouped_metrics

if TYPE_CHECKING:
    from glassgnn.run import Run
    from glassgnn.task import Task


@dataclass(frozen=True)
class Targets:
    """The learned target columns and their train-split normalisation.

    Attributes:
        columns: indices into the dataset's target columns of this kind.
        names: [k] their names.
        mean, std: [k] float32 normalisation (from the manifest, never recomputed).
    """

    columns: list[int]
    names: list[str]
    mean: torch.Tensor
    std: torch.Tensor


class TaskKind(ABC):
    """What a task kind decides; :data:`NODE` and :data:`GRAPH` are the two instances.

    Attributes:
        name: ``"node"`` or ``"graph"`` (the ``task`` of configurations, manifests and results).
        per_graph: one target row per graph (else one per particle).
        names_key, norm_key: the manifest fields of the names and the train-split statistics
            of all target columns of this kind.
        parity_title: title of a split's parity plot, with ``{split}`` to fill in.
    """

    name: str
    per_graph: bool
    names_key: str
    norm_key: str
    parity_title: str

    @abstractmethod
    def check(self, manifest: Manifest) -> None:
        """Raise ConfigError when the dataset has no target of this kind."""
        raise NotImplementedError

    def learned(self, manifest: Manifest, target: str | None) -> Targets:
        """The learned columns: ``target`` by name, or all of them, with their normalisation.

        Raises:
            ConfigError: ``target`` is not a column of this kind.
            ValueError: a std is not positive.
        """
        names: list[str] = getattr(manifest, self.names_key)
        if target is None:
            columns = list(range(len(names)))
        elif target in names:
            columns = [names.index(target)]
        else:
            raise ConfigError(f"target: {target!r} is not in the dataset's {self.names_key} {names}")
        norm: Normalisation = getattr(manifest, self.norm_key)
        mean = torch.tensor([norm.mean[c] for c in columns], dtype=torch.float32)
        std = torch.tensor([norm.std[c] for c in columns], dtype=torch.float32)
        if not bool((std > 0).all()):
            raise ValueError(f"manifest {self.norm_key} std {std.tolist()} must be positive")
        return Targets(columns, [names[c] for c in columns], mean, std)

    @abstractmethod
    def rows_per_graph(self, batch: dgl.DGLGraph) -> np.ndarray:
        """[n_graphs] number of model output rows of each graph of ``batch``."""
        raise NotImplementedError

    @abstractmethod
    def batch_targets(
        self, task: Task, batch: dgl.DGLGraph, split: str, ids: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised targets [n_rows, k] of the graphs ``ids`` of ``split`` batched as ``batch``,
        and the bool rows [n_rows] entering the loss, on the batch's device."""
        raise NotImplementedError

    @abstractmethod
    def evaluate(self, pred: np.ndarray, task: Task, split: str) -> dict:
        """MSE in normalised units (``"loss"``) and metrics in original units of [n_rows, k] ``pred``."""
        raise NotImplementedError

    @abstractmethod
    def prediction_arrays(self, task: Task, split: str, preds: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The arrays of ``predictions_{split}.npz`` (see :mod:`glassgnn.outputs`)."""
        raise NotImplementedError

    @abstractmethod
    def parity_points(self, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray | slice, np.ndarray | None]:
        """Rows of :meth:`prediction_arrays` drawn in a parity plot, and their type indices (None:
        one colour)."""
        raise NotImplementedError

    @abstractmethod
    def frame_row(self, run: Run, graph: dgl.DGLGraph, labels: dict, j: int) -> dict[str, np.ndarray]:
        """What predict.py keeps of input frame ``j`` besides its predictions: the learned target
        columns when the input has them (``"target"``), per-particle ``"type"`` and ``"mask"``.

        Args:
            graph: the frame's graph; labels: per-graph labels of the frame's file.
        """
        raise NotImplementedError

    @abstractmethod
    def input_target_names(self, run: Run, records: list[dict]) -> list[str]:
        """Names of the input columns compared with the predictions (one per learned column).

        Raises:
            ValueError: the inputs name their columns differently.
        """
        raise NotImplementedError


class NodeTask(TaskKind):
    name, per_graph = "node", False
    names_key, norm_key = "target_names", "normalisation"
    parity_title = "{split} (model selected on val)"

    def check(self, manifest: Manifest) -> None:
        if not manifest.target_names:
            raise ConfigError(
                "task node: the dataset has no per-particle targets"
                + (" (it has graph targets: use --task graph)" if manifest.graph_target_names else "")
            )

    def rows_per_graph(self, batch: dgl.DGLGraph) -> np.ndarray:
        return batch.batch_num_nodes().cpu().numpy()

    def batch_targets(self, task, batch, split, ids):
        return task.normalised_targets(batch), batch.ndata[schema.MASK]

    def evaluate(self, pred, task, split):
        graphs = task.graphs[split]
        true = np.concatenate([task.targets(g).numpy() for g in graphs])
        mask = np.concatenate([g.ndata[schema.MASK].numpy() for g in graphs])
        types = np.concatenate([g.ndata[schema.TYPE].numpy() for g in graphs])
        std = task.std.numpy()
        loss = float((((pred - true) / std)[mask] ** 2).mean()) if mask.any() else float("nan")
        metrics = grouped_metrics(pred, true, types, mask, task.target_names, task.type_names)
        return {"loss": loss, **metrics}

    def prediction_arrays(self, task, split, preds):
        return outputs.prediction_arrays(preds, task.graphs[split], task.columns, task.sources(split))

    def parity_points(self, arrays):
        return arrays["mask"], arrays["type"][arrays["mask"]]

    def frame_row(self, run, graph, labels, j):
        row = {"type": graph.ndata[schema.TYPE].numpy(), "mask": graph.ndata[schema.MASK].numpy()}
        if graph.ndata[schema.TARGET].shape[1] == len(run.manifest.target_names):
            row["target"] = run.targets(graph).numpy()
        return row

    def input_target_names(self, run, records):
        # A file read at another time index names its columns otherwise: kept, and reported.
        names = {tuple(record["target_names"][c] for c in run.columns) for record in records}
        if len(names) > 1:
            raise ValueError(f"the inputs name their target columns differently: {sorted(names)}")
        return list(names.pop())


class GraphTask(TaskKind):
    name, per_graph = "graph", True
    names_key, norm_key = "graph_target_names", "graph_normalisation"
    parity_title = "{split}, one point per graph (model selected on val)"

    def check(self, manifest: Manifest) -> None:
        if not manifest.graph_target_names:
            raise ConfigError(
                "task graph: the dataset has no graph targets; "
                "build it with construct_graph.py --graph_target NAME"
            )

    def rows_per_graph(self, batch: dgl.DGLGraph) -> np.ndarray:
        return np.ones(batch.batch_size, dtype=np.int64)

    def batch_targets(self, task, batch, split, ids):
        values = task.graph_targets[split][torch.as_tensor(ids)].to(batch.device)
        values = (values - task.mean.to(batch.device)) / task.std.to(batch.device)
        return values, torch.ones(len(ids), dtype=torch.bool, device=batch.device)

    def evaluate(self, pred, task, split):
        true = task.graph_targets[split].numpy()
        loss = float((((pred - true) / task.std.numpy()) ** 2).mean())
        return {"loss": loss, **graph_metrics(pred, true, task.target_names)}

    def prediction_arrays(self, task, split, preds):
        true = task.graph_targets[split].numpy()
        return outputs.graph_prediction_arrays(
            np.concatenate(preds), true, task.graphs[split], task.sources(split)
        )

    def parity_points(self, arrays):
        return slice(None), None

    def frame_row(self, run, graph, labels, j):
        if schema.GRAPH_TARGET not in labels:
            return {}
        return {"target": labels[schema.GRAPH_TARGET][j : j + 1, run.columns].numpy()}

    def input_target_names(self, run, records):
        return list(run.target_names)  # per-snapshot values: named by the dataset's graph_target


NODE, GRAPH = NodeTask(), GraphTask()
KINDS = {kind.name: kind for kind in (NODE, GRAPH)}  # in the order of glassgnn.manifest.TASKS


def task_kind(name: str | None) -> TaskKind:
    """The kind named ``name``; None (runs and manifests written before graph tasks) is node.

    Raises:
        ConfigError: an unknown name.
    """
    if name is None:
        return NODE
    if name not in KINDS:
        raise ConfigError(f"task must be one of {', '.join(KINDS)}, got {name!r}")
    return KINDS[name]
