"""A finished run directory, loaded for inference (predict.py, explain.py).

A run directory holds ``config.yaml`` (resolved configuration, see
:mod:`glassgnn.config`), ``manifest.json`` (copy of the dataset manifest) and
``best.pt`` (key ``"model"``: the state dict selected on validation). It is
written by ``train.py`` or by the DeepMind converter.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import dgl
import torch
from torch import nn

from glassgnn import schema
from glassgnn.checkpoint import load_checkpoint
from glassgnn.config import defaults, load_resolved
from glassgnn.features import node_features
from models.models import build_model


def target_columns(manifest: dict, target: str | None) -> list[int]:
    """Indices of the learned columns of ``ndata[TARGET]``: ``target`` by name, or all of them."""
    names = list(manifest["target_names"])
    if target is None:
        return list(range(len(names)))
    if target not in names:
        raise ValueError(f"target {target!r} is not in the dataset's target_names {names}")
    return [names.index(target)]


def type_names(manifest: dict) -> dict[int, str]:
    """Type index -> original type label, from the manifest's type_map."""
    return {int(index): str(label) for label, index in manifest["type_map"].items()}


@dataclass
class Run:
    """A trained model with everything needed to feed it and read its output.

    Attributes:
        model: the network in eval mode, best (validation-selected) weights, on ``device``.
        config: resolved configuration (training keys and ``"model"``).
        manifest: the dataset manifest the model was trained on.
        device: where the model lives.
        columns: learned target columns of ``ndata[TARGET]``; ``target_names`` their names.
        mean, std: [k] normalisation of those columns (train split statistics).
    """

    model: nn.Module
    config: dict
    manifest: dict
    device: torch.device
    columns: list[int]
    target_names: list[str]
    mean: torch.Tensor
    std: torch.Tensor

    def features(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """Model input of ``graph``'s particles, [n_atoms, in_dim], on the graph's device."""
        return node_features(
            graph, self.manifest["num_types"], self.config["type_encoding"], self.config["node_fields"]
        )

    def targets(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """The learned target columns of ``graph`` in original units, [n_atoms, k]."""
        return graph.ndata[schema.TARGET][:, self.columns]

    @torch.no_grad()
    def predict(self, graph: dgl.DGLGraph) -> torch.Tensor:
        """Predictions in original target units, [n_atoms, k], on ``self.device``."""
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
    for name in ("config.yaml", schema.MANIFEST, "best.pt"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir}: not a run directory ({name} is missing)")
    device = torch.device(device)
    config = {**defaults(), **load_resolved(run_dir / "config.yaml")}
    manifest = json.loads((run_dir / schema.MANIFEST).read_text())
    model = build_model(config["model_name"], config["model"])
    state = load_checkpoint(run_dir / "best.pt", device)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    columns = target_columns(manifest, config.get("target"))
    norm = manifest["normalisation"]
    mean = torch.tensor([norm["mean"][c] for c in columns], dtype=torch.float32, device=device)
    std = torch.tensor([norm["std"][c] for c in columns], dtype=torch.float32, device=device)
    names = [manifest["target_names"][c] for c in columns]
    return Run(model, config, manifest, device, columns, names, mean, std)
