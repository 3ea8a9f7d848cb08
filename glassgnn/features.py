"""Node input features ``feat`` built from a graph's node data."""

from __future__ import annotations

from collections.abc import Mapping

import dgl
import torch

from glassgnn import schema
from glassgnn.manifest import Manifest

TYPE_ENCODINGS = ("onehot", "scalar")

#: Per extra field: train-split mean and std, each [m] (the manifest's ``field_normalisation``).
FieldStats = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


def field_stats(
    manifest: Manifest, names: list[str] | tuple[str, ...]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Standardisation of the extra fields ``names`` from the manifest's ``field_normalisation``.

    Datasets written before fields were standardised have no statistics: their fields
    enter the model as stored (an empty result for them).
    """
    stored = manifest.field_normalisation
    out = {}
    for name in names:
        if name in stored:
            mean = torch.tensor(stored[name].mean, dtype=torch.float32)
            std = torch.tensor(stored[name].std, dtype=torch.float32)
            out[name] = (mean, std)
    return out


def node_features(
    graph: dgl.DGLGraph,
    num_types: int,
    type_encoding: str = "onehot",
    extra_fields: tuple[str, ...] | list[str] = (),
    stats: FieldStats | None = None,
) -> torch.Tensor:
    """The model input of every particle.

    Args:
        graph: graph following :mod:`glassgnn.schema`.
        num_types: number of particle types T in the dataset's type mapping.
        type_encoding: ``"onehot"`` gives T columns; ``"scalar"`` gives the type
            index as one float (as in DeepMind's released Bapst model).
        extra_fields: names of extra per-atom fields (``ndata["x_<name>"]``) to append.
        stats: per field name, the train-split mean and std ([m] each) to standardise
            it with (:func:`field_stats`); fields without an entry are appended as stored.

    Returns:
        [n_atoms, in_dim] float32 on the graph's device, in_dim =
        :func:`feature_dim` of the same arguments.
    """
    types = graph.ndata[schema.TYPE]
    if type_encoding == "onehot":
        parts = [torch.nn.functional.one_hot(types, num_types).float()]
    elif type_encoding == "scalar":
        parts = [types.float().unsqueeze(1)]
    else:
        raise ValueError(f"unknown type_encoding {type_encoding!r}; known: {', '.join(TYPE_ENCODINGS)}")
    for name in extra_fields:
        key = schema.EXTRA_PREFIX + name
        if key not in graph.ndata:
            raise KeyError(f"extra node field {name!r} is not in the graph (has: {sorted(graph.ndata)})")
        value = graph.ndata[key].float()
        value = value.reshape(value.shape[0], -1)
        if stats and name in stats:
            mean, std = stats[name]
            value = (value - mean.to(value.device)) / std.to(value.device)
        parts.append(value)
    return torch.cat(parts, dim=1)


def feature_dim(
    num_types: int, type_encoding: str = "onehot", extra_widths: tuple[int, ...] | list[int] = ()
) -> int:
    """Width of :func:`node_features` for the given encoding and extra field widths."""
    return (num_types if type_encoding == "onehot" else 1) + sum(extra_widths)
