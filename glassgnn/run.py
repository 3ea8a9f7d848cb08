"""A finished run directory, loaded for inference (predict.py, explain.py).

A run directory holds ``config.yaml`` (resolved configuration, see
:mod:`glassgnn.config`), ``manifest.json`` (copy of the dataset manifest) and
``best.pt`` (key ``"model"``: the state dict selected on validation). It is
written by ``train.py`` or by the DeepMind converter.

A run learns per-particle targets (``task: node``, predictions [n_atoms, k]) or
per-snapshot targets (``task: graph``, predictions [n_graphs, k], one row per graph
of a batched graph); :func:`build_network` builds either from a resolved configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dgl
import torch

from glassgnn import outputs, schema
from glassgnn.checkpoint import load_checkpoint
from glassgnn.config import ResolvedConfig, load_resolved
from glassgnn.descriptors import DescriptorParams
from glassgnn.features import field_stats, node_features
from glassgnn.manifest import Manifest
from glassgnn.task_kind import NODE, TaskKind, task_kind
from models.baseline import RidgeBaseline
from models.contract import GlassModel
from models.models import build_model
from models.readout import build_graph_level_model


def build_network(config: ResolvedConfig) -> GlassModel:
    """The untrained network of a resolved run configuration.

    Node task: the registered model (with ``baseline: ridge``, wrapped in
    :class:`models.baseline.RidgeBaseline`). Graph task: a model that pools itself (``cgcnn``
    with ``pooling`` other than none) as it is; any other registered model wrapped by
    :func:`models.readout.build_graph_level_model` with the configuration's ``readout``.

    Args:
        config: ``model_name``, ``model`` (complete, with in_dim/out_dim), ``task`` (None:
            node, as in runs written before graph tasks), ``baseline`` and ``readout``.
    """
    name, hparams = config.model_name, config.model
    if not task_kind(config.task).per_graph or hparams.get("pooling", "none") != "none":
        network = build_model(name, hparams)
        if config.baseline == "ridge":
            return RidgeBaseline(network, hparams["in_dim"], hparams["out_dim"], config.input_dropout)
        return network
    return build_graph_level_model(name, hparams, config.readout)


def type_names(manifest: Manifest) -> dict[int, str]:
    """Type index -> original type label, from the manifest's type_map."""
    return {int(index): str(label) for label, index in manifest.type_map.items()}


@dataclass
class Run:
    """A trained model with everything needed to feed it and read its output.

    Attributes:
        model: the network in eval mode, best (validation-selected) weights, on ``device``.
        config: the resolved configuration the run was trained with.
        manifest: the dataset manifest the model was trained on.
        device: where the model lives.
        columns: learned target columns (of ``ndata[TARGET]``, or of the ``GRAPH_TARGET``
            label for a graph run); ``target_names`` their names.
        mean, std: [k] normalisation of those columns (train split statistics).
        kind: :data:`glassgnn.task_kind.NODE` (one prediction per particle) or ``GRAPH``
            (one per graph).
    """

    model: GlassModel
    config: ResolvedConfig
    manifest: Manifest
    device: torch.device
    columns: list[int]
    target_names: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    kind: TaskKind = NODE

    def __post_init__(self) -> None:
        self._field_stats = field_stats(self.manifest, self.config.node_fields)  # once, not per call

    def features(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """Model input of ``graph``'s particles, [n_atoms, in_dim], on the graph's device."""
        fields = self.config.node_fields
        return node_features(
            graph, self.manifest.num_types, self.config.type_encoding, fields, self._field_stats
        )

    def targets(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """The learned target columns of ``graph`` in original units, [n_atoms, k] (node runs).

        A graph run's targets are not stored in the graph but in the per-graph labels:
        ``labels[schema.GRAPH_TARGET][:, run.columns]`` (``load_split_labels`` or
        ``build_graphs_and_labels``).
        """
        if self.kind.per_graph:
            raise ValueError(
                "a graph run's targets are per-graph labels: labels[schema.GRAPH_TARGET][:, run.columns]"
            )
        return graph.ndata[schema.TARGET][:, self.columns]

    def check_dataset(self, manifest: Manifest, where: str) -> None:
        """Refuse a dataset whose node inputs differ from the run's (another type map, a missing
        input field, descriptors with other parameters): the model would read other numbers.

        Args:
            manifest: the dataset's manifest.
            where: the dataset directory, for the message.
        """
        if manifest.type_map != self.manifest.type_map:
            raise ValueError(f"{where}: type map {manifest.type_map} differs from the run's")
        fields = self.config.node_fields
        missing = [name for name in fields if name not in manifest.extra_fields]
        if missing:
            raise ValueError(f"{where}: the run reads node field(s) {missing}, which the dataset lacks")
        if schema.DESCRIPTORS in fields:
            mine, theirs = self.manifest.graph["descriptors"], manifest.graph.get("descriptors")
            # as parameters, not dicts: keys added since (fields, inherent) read as their defaults
            if theirs is None or DescriptorParams.from_dict(theirs) != DescriptorParams.from_dict(mine):
                raise ValueError(
                    f"{where}: descriptors built with {theirs}, the run's with {mine}; rebuild the "
                    "dataset with the run's parameters (construct_graph.py --descriptor_param)"
                )

    @torch.no_grad()
    def predict(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """Predictions in original target units on ``self.device``: [n_atoms, k] for a node
        run, [n_graphs, k] for a graph run (``graph`` may be a batch of graphs)."""
        graph = graph.to(self.device)
        out = self.model(graph=graph, feat=self.features(graph))
        return out * self.std + self.mean


def load_run(run_dir: str | os.PathLike, device: torch.device | str = "cpu") -> Run:
    """Load a run directory for inference with its validation-selected weights.

    Args:
        run_dir: directory with config.yaml, manifest.json and best.pt.
        device: where to put the model (``"cpu"``, ``"cuda:0"``, a torch.device).
    """
    run_dir = Path(run_dir)
    for name in (outputs.CONFIG, schema.MANIFEST, outputs.BEST):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir}: not a run directory ({name} is missing)")
    device = torch.device(device)
    config = load_resolved(run_dir / outputs.CONFIG)  # keys the file lacks: their defaults
    manifest = Manifest.load(run_dir / schema.MANIFEST)
    kind = task_kind(config.task)  # runs written before graph tasks have none: node
    model = build_network(config)
    state = load_checkpoint(run_dir / outputs.BEST, device)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    learned = kind.learned(manifest, config.target)
    mean, std = learned.mean.to(device), learned.std.to(device)
    return Run(model, config, manifest, device, learned.columns, learned.names, mean, std, kind)
