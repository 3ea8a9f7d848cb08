"""Graph-level readouts: one value per graph from any model's per-particle output.

Not a registered model: a module that wraps one. :class:`Readout` pools
per-particle features of a (batched) graph into [n_graphs, dim] with DGL's
segment readouts (mean, sum, max) or global attention pooling (Li et al.,
"Gated Graph Sequence Neural Networks", ICLR 2016, as DGL's
``GlobalAttentionPooling``). :class:`GraphLevelModel` composes a registered
per-particle model, a readout and an optional MLP head, and keeps the zoo's call
signature::

    out = model(graph=graph, feat=feat, eweight=eweight)   # [n_graphs, out_dim]

Two ways of using a node model, chosen by ``ReadoutConfig.hidden_dim``:

- ``hidden_dim = 0``: the node model predicts ``out_dim`` values per particle
  and the graph prediction is their pooled value (e.g. the mean per-particle
  energy); no head.
- ``hidden_dim > 0``: the node model emits ``hidden_dim`` features per particle,
  they are pooled, and a head (softplus, then an MLP ``[hidden_dim,
  *head_dims, out_dim]``) maps the pooled vector to the graph prediction
  (CGCNN's arrangement).

Every readout is invariant under relabelling the particles of a graph, and the
pooled value of a graph does not depend on the other graphs of a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dgl
import torch
from dgl.nn import GlobalAttentionPooling
from torch import nn

from glassgnn import schema
from models.common import mlp
from models.contract import Ability, GlassModel, Invariance, OutputLevel
from models.models import build_model

READOUT_OPS = ("mean", "sum", "max", "attention")


class Readout(nn.Module):
    """Pool per-particle features into one row per graph.

    Args:
        op: one of :data:`READOUT_OPS`.
        dim: feature width (needed by ``attention``, whose gate is ``Linear(dim, 1)``).
        use_mask: pool only the particles with ``graph.ndata[schema.MASK]`` true
            (e.g. one species); every graph must then have at least one.
    """

    def __init__(self, op: str = "mean", dim: int | None = None, use_mask: bool = False):
        super().__init__()
        if op not in READOUT_OPS:
            raise ValueError(f"unknown readout {op!r}; known: {', '.join(READOUT_OPS)}")
        if op == "attention" and not dim:
            raise ValueError("the attention readout needs the feature width dim")
        self.op = op
        self.use_mask = use_mask
        # No gate bias: the softmax over each graph's nodes cancels it (its gradient is 0).
        self.attention = GlobalAttentionPooling(nn.Linear(dim, 1, bias=False)) if op == "attention" else None

    def forward(self, graph: dgl.DGLGraph, h: torch.Tensor) -> torch.Tensor:
        """Pool ``h`` [n_atoms, dim] over each graph of ``graph``; returns [n_graphs, dim]."""
        if self.use_mask:
            graph, h = _masked_nodes(graph, h)
        if self.attention is not None:
            return self.attention(graph, h)
        with graph.local_scope():
            graph.ndata["_h"] = h
            return dgl.readout_nodes(graph, "_h", op=self.op)


def _masked_nodes(graph: dgl.DGLGraph, h: torch.Tensor) -> tuple[dgl.DGLGraph, torch.Tensor]:
    """The masked particles as an edgeless batched graph of their own, and their features.

    Pooling only needs each graph's node count, so an edgeless graph with the
    masked counts lets every DGL readout (including attention) run unchanged.
    """
    mask = graph.ndata[schema.MASK].bool()
    # DGL's segment sums take floats only; counts below 2**24 are exact in float32
    counts = dgl.ops.segment_reduce(graph.batch_num_nodes(), mask.float(), "sum").long()
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"masked readout: graph(s) {empty} of the batch have no masked particle")
    pooled = dgl.graph(([], []), num_nodes=int(counts.sum()), device=h.device)
    pooled.set_batch_num_nodes(counts)
    pooled.set_batch_num_edges(torch.zeros_like(counts))
    return pooled, h[mask]


@dataclass
class ReadoutConfig:
    """How a per-particle model becomes a graph-level one.

    Attributes:
        op: pooling, one of :data:`READOUT_OPS`.
        hidden_dim: 0 pools the node model's ``out_dim`` outputs directly; > 0
            makes the node model emit this many features per particle, pooled
            and then mapped by the MLP head.
        head_dims: hidden widths of the MLP head (used only when hidden_dim > 0).
        use_mask: pool only masked particles (``ndata[schema.MASK]``).
    """

    op: str = "mean"
    hidden_dim: int = 0
    head_dims: list[int] = field(default_factory=list)
    use_mask: bool = False


class GraphLevelModel(GlassModel):
    """A per-particle model followed by a readout and an optional head.

    Its declarations are the node model's (depth, invariance) but for the output level;
    of the node model's abilities it passes on the training cache only (the others act
    per particle).

    Args:
        node_model: a per-particle model (``forward(graph, feat, eweight)`` -> [n_atoms, node_dim]).
        readout: a :class:`Readout` over width ``node_dim``.
        head: optional module mapping [n_graphs, node_dim] to [n_graphs, out_dim].
    """

    output_level = OutputLevel.GRAPH

    def __init__(self, node_model: GlassModel, readout: Readout, head: nn.Module | None = None):
        super().__init__()
        if node_model.output_level != OutputLevel.NODE:
            raise ValueError(
                f"{type(node_model).__name__} already gives one output per graph; pool a per-particle model"
            )
        self.node_model = node_model
        self.readout = readout
        self.head = head

    @property
    def invariance(self) -> Invariance:
        # Pooling and the head see only per-particle features, so the node model decides.
        return self.node_model.invariance

    @property
    def num_message_passing(self) -> int:
        return self.node_model.num_message_passing

    @property
    def abilities(self) -> frozenset[Ability]:
        return self.node_model.abilities & {Ability.TRAINING_CACHE}

    @property
    def decoder_prefixes(self) -> tuple[str, ...]:
        """Everything after the last message-passing layer: the node model's decoder, then the
        attention gate of the readout and the head when there are."""
        after = [
            *(["readout"] if self.readout.attention is not None else []),
            *(["head"] if self.head else []),
        ]
        return (*(f"node_model.{p}" for p in self.node_model.decoder_prefixes), *after)

    def release_cache(self) -> None:
        """The node model's :meth:`models.contract.GlassModel.release_cache`."""
        self.node_model.release_cache()

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Returns [n_graphs, out_dim] (``graph.batch_size`` rows)."""
        h = self.node_model(graph=graph, feat=feat, eweight=eweight)
        pooled = self.readout(graph, h)
        return pooled if self.head is None else self.head(pooled)


def build_graph_level_model(
    name: str, model_config: Mapping[str, Any], readout_config: ReadoutConfig | Mapping[str, Any]
) -> GraphLevelModel:
    """Build registered model ``name`` as a graph-level model.

    Args:
        name: registered per-particle model.
        model_config: its hyperparameters, with ``out_dim`` the number of graph targets.
        readout_config: a :class:`ReadoutConfig` or a mapping of its fields
            (unknown keys are errors naming them).
    """
    if not isinstance(readout_config, ReadoutConfig):
        known = {f.name for f in dataclasses.fields(ReadoutConfig)}
        unknown = sorted(set(readout_config) - known)
        if unknown:
            raise KeyError(f"unknown readout key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        readout_config = ReadoutConfig(**dict(readout_config))
    config = dict(model_config)
    out_dim = int(config.get("out_dim", 1))
    if readout_config.hidden_dim > 0:
        config["out_dim"] = readout_config.hidden_dim
        # The node model ends in a linear layer, so the head starts with a nonlinearity,
        # as CGCNN's head does (softplus, then the first linear layer).
        head = nn.Sequential(
            nn.Softplus(), mlp([readout_config.hidden_dim, *readout_config.head_dims, out_dim])
        )
        node_dim = readout_config.hidden_dim
    else:
        head, node_dim = None, out_dim
    readout = Readout(readout_config.op, node_dim, readout_config.use_mask)
    return GraphLevelModel(build_model(name, config), readout, head)
