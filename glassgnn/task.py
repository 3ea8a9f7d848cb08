"""What a run learns: the dataset's graphs, the target columns, their normalisation and the inputs."""

from __future__ import annotations

import dgl
import torch

from glassgnn import schema
from glassgnn.config import ConfigError
from glassgnn.features import feature_dim, node_features
from glassgnn.run import target_columns, type_names


class Task:
    """Graphs of every split plus how to turn them into model inputs and targets.

    Targets are standardised with the train-split statistics stored in the manifest
    (never recomputed here, never typed in).

    Args:
        graphs: ``{split: [DGLGraph, ...]}``; ``train`` and ``val`` must be non-empty.
        manifest: the dataset manifest.
        cfg: resolved configuration (``target``, ``type_encoding``, ``node_fields``).
    """

    def __init__(self, graphs: dict[str, list[dgl.DGLGraph]], manifest: dict, cfg: dict):
        for split in ("train", "val"):
            if not graphs.get(split):
                raise ValueError(
                    f"the dataset has no {split} graphs; construct_graph.py must write {split}.bin"
                )
        self.graphs = graphs
        self.manifest = manifest
        try:
            self.columns = target_columns(manifest, cfg["target"])
        except ValueError as err:
            raise ConfigError(f"target: {err}") from None
        self.target_names = [manifest["target_names"][c] for c in self.columns]
        norm = manifest["normalisation"]
        self.mean = torch.tensor([norm["mean"][c] for c in self.columns], dtype=torch.float32)
        self.std = torch.tensor([norm["std"][c] for c in self.columns], dtype=torch.float32)
        if not bool((self.std > 0).all()):
            raise ValueError(f"manifest normalisation std {self.std.tolist()} must be positive")
        self.num_types = int(manifest["num_types"])
        self.type_names = type_names(manifest)
        self.type_encoding = cfg["type_encoding"]
        self.node_fields = list(cfg["node_fields"])
        extra = manifest.get("extra_fields", {})
        missing = [name for name in self.node_fields if name not in extra]
        if missing:
            raise ConfigError(f"node_fields: {missing} not in the dataset's extra_fields {sorted(extra)}")
        self.in_dim = feature_dim(self.num_types, self.type_encoding, [extra[n] for n in self.node_fields])
        self.out_dim = len(self.columns)

    def features(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """[n_atoms, in_dim] model input on the graph's device."""
        return node_features(graph, self.num_types, self.type_encoding, self.node_fields)

    def targets(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """[n_atoms, k] learned targets in original units."""
        return graph.ndata[schema.TARGET][:, self.columns]

    def normalised_targets(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """[n_atoms, k] standardised targets on the graph's device."""
        return (self.targets(graph) - self.mean.to(graph.device)) / self.std.to(graph.device)

    def denormalise(self, pred: torch.Tensor) -> torch.Tensor:
        """Model output [n_atoms, k] back to original units."""
        return pred * self.std.to(pred.device) + self.mean.to(pred.device)

    def normalisation(self) -> dict:
        """The statistics used, for the checkpoint."""
        return {"target_names": self.target_names, "mean": self.mean.tolist(), "std": self.std.tolist()}

    def sources(self, split: str) -> list[dict]:
        """Per graph ``{"source", "frame", ...}`` of ``split`` from the manifest ([] if unknown)."""
        entries = self.manifest.get("splits", {}).get(split, {}).get("graphs", [])
        return entries if len(entries) == len(self.graphs.get(split, [])) else []
