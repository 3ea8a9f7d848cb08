"""What a run learns: the dataset's graphs, the target columns, their normalisation and the inputs.

Two kinds of task share the training loop (:mod:`glassgnn.task_kind`): ``node``
(per-particle targets, loss and metrics over the masked particles) and ``graph``
(per-snapshot targets, one row per graph).
"""

from __future__ import annotations

import dgl
import torch

from glassgnn import schema
from glassgnn.config import ConfigError, TrainConfig
from glassgnn.features import feature_dim, field_stats, node_features
from glassgnn.manifest import Manifest
from glassgnn.run import type_names
from glassgnn.task_kind import TaskKind, task_kind


def resolve_task(requested: str | None, manifest: Manifest) -> TaskKind:
    """The run's task kind: ``requested`` (``--task``) or, when None, the dataset manifest's.

    Raises:
        ConfigError: an unknown task, or the dataset has no targets of the requested kind.
    """
    kind = task_kind(requested or manifest.task)
    kind.check(manifest)
    return kind


class Task:
    """Graphs of every split plus how to turn them into model inputs and targets.

    Targets are standardised with the train-split statistics stored in the manifest
    (never recomputed here, never typed in).

    Args:
        graphs: ``{split: [DGLGraph, ...]}``; ``train`` and ``val`` must be non-empty.
        manifest: the dataset manifest.
        cfg: the run's configuration (``task``, ``target``, ``type_encoding``, ``node_fields``,
            and ``dataset_dir`` to read graph targets from when they are not given).
        graph_targets: graph task only: ``{split: [G, k]}`` per-snapshot targets in original
            units, all manifest columns (default: read from ``cfg.dataset_dir``).
    """

    def __init__(
        self,
        graphs: dict[str, list[dgl.DGLGraph]],
        manifest: Manifest,
        cfg: TrainConfig,
        graph_targets: dict[str, torch.Tensor] | None = None,
    ):
        for split in ("train", "val"):
            if not graphs.get(split):
                raise ValueError(
                    f"the dataset has no {split} graphs; construct_graph.py must write {split}.bin"
                )
        self.graphs = graphs
        self.manifest = manifest
        self.kind = resolve_task(cfg.task, manifest)
        learned = self.kind.learned(manifest, cfg.target)
        self.columns, self.target_names = learned.columns, learned.names
        self.mean, self.std = learned.mean, learned.std
        self.graph_targets: dict[str, torch.Tensor] = {}
        if self.kind.per_graph:
            self.graph_targets = self._load_graph_targets(graph_targets, cfg)
        self.num_types = manifest.num_types
        self.type_names = type_names(manifest)
        self.type_encoding = cfg.type_encoding
        self.node_fields = list(cfg.node_fields)
        extra = manifest.extra_fields
        missing = [name for name in self.node_fields if name not in extra]
        if missing:
            hint = (
                "; build the dataset with construct_graph.py --descriptors"
                if schema.DESCRIPTORS in missing
                else ""
            )
            raise ConfigError(
                f"node_fields: {missing} not in the dataset's extra_fields {sorted(extra)}{hint}"
            )
        self.field_stats = field_stats(manifest, self.node_fields)
        self.in_dim = feature_dim(self.num_types, self.type_encoding, [extra[n] for n in self.node_fields])
        self.out_dim = len(self.columns)

    def _load_graph_targets(self, given: dict | None, cfg: TrainConfig) -> dict[str, torch.Tensor]:
        if given is None:
            from glassgnn.dataset import load_graph_targets  # DGL-file reading only when needed

            given = load_graph_targets(cfg.dataset_dir)
        out = {}
        for split, graphs in self.graphs.items():
            values = given.get(split)
            if values is None or len(values) != len(graphs):
                count = None if values is None else len(values)
                raise ValueError(f"split {split}: {len(graphs)} graphs but graph targets for {count}")
            values = torch.as_tensor(values, dtype=torch.float32)[:, self.columns]
            if not bool(torch.isfinite(values).all()):
                raise ValueError(f"split {split}: graph targets contain NaN or inf")
            out[split] = values
        return out

    def add_subset(self, name: str, split: str, ids: list[int]) -> None:
        """Register graphs ``ids`` of ``split`` as a split of their own, ``name`` (e.g. the sample
        of training graphs evaluated every epoch); evaluation treats it like any split."""
        self.graphs[name] = [self.graphs[split][i] for i in ids]
        if self.kind.per_graph:
            self.graph_targets[name] = self.graph_targets[split][torch.as_tensor(ids)]

    def features(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """[n_atoms, in_dim] model input on the graph's device."""
        return node_features(graph, self.num_types, self.type_encoding, self.node_fields, self.field_stats)

    def targets(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """[n_atoms, k] learned per-particle targets in original units (node task)."""
        return graph.ndata[schema.TARGET][:, self.columns]

    def normalised_targets(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """[n_atoms, k] standardised per-particle targets on the graph's device (node task)."""
        return (self.targets(graph) - self.mean.to(graph.device)) / self.std.to(graph.device)

    def batch_targets(
        self, batch: dgl.DGLGraph, split: str, ids: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised targets of a batch and the rows entering the loss, on the batch's device.

        Args:
            batch: ``dgl.batch`` of the graphs ``ids`` of ``split``.

        Returns:
            Node task: [n_atoms, k] and the particle mask [n_atoms]; graph task: [n_graphs, k]
            and an all-true [n_graphs].
        """
        return self.kind.batch_targets(self, batch, split, ids)

    def denormalise(self, pred: torch.Tensor) -> torch.Tensor:
        """Model output [n_rows, k] back to original units."""
        return pred * self.std.to(pred.device) + self.mean.to(pred.device)

    def normalisation(self) -> dict:
        """The statistics used, for the checkpoint."""
        return {"target_names": self.target_names, "mean": self.mean.tolist(), "std": self.std.tolist()}

    def sources(self, split: str) -> list[dict]:
        """Per graph ``{"source", "frame", ...}`` of ``split`` from the manifest ([] if unknown)."""
        entries = self.manifest.splits.get(split, {}).get("graphs", [])
        return entries if len(entries) == len(self.graphs.get(split, [])) else []
