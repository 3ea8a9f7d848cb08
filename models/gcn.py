"""GCN: graph convolutional network of Kipf & Welling (ICLR 2017), node features only.

Kipf, T. N. & Welling, M. "Semi-Supervised Classification with Graph
Convolutional Networks", ICLR 2017, arXiv:1609.02907.

Each layer is DGL's ``GraphConv`` with symmetric normalisation,
h' = act(D^-1/2 (A + I) D^-1/2 h W), where the identity is the paper's
renormalisation trick (self-loops added at every call; set ``self_loops: false``
when the dataset's graphs already contain self-pairs). The degrees are edge
counts (an edge weight scales the message, not the degree), as in ``GraphConv``.

The normalisation is folded into the edge weights here (GraphConv with
``norm='none'``, same parameters and outputs as ``norm='both'``) so that the
degrees can come from the full graph when the model runs on a subgraph: a
particle's output depends on its neighbours' degrees, i.e. on particles one hop
beyond its L-hop neighbourhood. :meth:`GCN.subgraph_context` gives those degrees
as node data; a subgraph that carries them (``dgl.khop_in_subgraph`` and
``dgl.node_subgraph`` copy node data) gives exactly the full-graph prediction. The model sees the
graph's topology only, never distances or directions, so it is invariant under
any rotation of the configuration that keeps the graph. Encoder and decoder
MLPs follow the SymGNN repository's GCN baseline (Li et al., ICML 2024).
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import torch
from dgl.nn import GraphConv
from torch import nn

from models.common import edge_weights, mlp
from models.contract import Ability, GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model

# Node data of :meth:`GCN.subgraph_context`: in- and out-degree in the full graph, [n_atoms] float.
FULL_IN_DEGREE = "gcn_full_in_degree"
FULL_OUT_DEGREE = "gcn_full_out_degree"


@dataclass
class GCNConfig(ModelConfig):
    """Attributes:
    hidden_dim: width of the node encoder, every graph convolution and the decoder.
    num_layers: number of graph convolutions.
    self_loops: add (i, i) edges before each call (Kipf & Welling's A + I).
    dropout: dropout between graph convolutions.
    """

    hidden_dim: int = 32
    num_layers: int = 4
    self_loops: bool = True
    dropout: float = 0.0


@register_model("gcn", GCNConfig)
class GCN(GlassModel):
    invariance = Invariance.SO3
    output_level = OutputLevel.NODE
    decoder_prefixes = ("decoder",)  # the MLP after the last graph convolution
    abilities = frozenset({Ability.LAYERS, Ability.SUBGRAPH_CONTEXT})

    def __init__(self, config: GCNConfig):
        super().__init__()
        d = config.hidden_dim
        self.self_loops = config.self_loops
        self.encoder = mlp([config.in_dim, d, d], last_activation=True)
        self.convs = nn.ModuleList(
            GraphConv(d, d, norm="none", activation=nn.functional.relu, allow_zero_in_degree=True)
            for _ in range(config.num_layers)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.decoder = mlp([d, d, d, config.out_dim])

    def subgraph_context(self, graph: dgl.DGLGraph) -> dict[str, torch.Tensor]:
        """What a subgraph of ``graph`` must carry as node data to give ``graph``'s outputs:
        every particle's in- and out-degree in ``graph`` (or those ``graph`` already carries,
        when it is itself such a subgraph), [n_atoms] float each."""
        if FULL_IN_DEGREE in graph.ndata:
            return {key: graph.ndata[key] for key in (FULL_IN_DEGREE, FULL_OUT_DEGREE)}
        return {FULL_IN_DEGREE: graph.in_degrees().float(), FULL_OUT_DEGREE: graph.out_degrees().float()}

    @property
    def num_message_passing(self) -> int:
        return len(self.convs)

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        layers = len(self.convs)
        return self.forward_layers([graph] * layers, feat, [eweight] * layers)

    def forward_layers(
        self, graphs: list[dgl.DGLGraph], feat: torch.Tensor, eweights: list[torch.Tensor | None]
    ) -> torch.Tensor:
        """Graph convolution i reads ``graphs[i]`` (all particles, some of the edges) with
        ``eweights[i]``; the degrees are those of ``graphs[0]`` (or the full graph's it carries).

        ``forward`` is this with the same graph for every layer; the explainer passes each
        layer only the edges it needs (:func:`glassgnn.explain_subgraph.layer_edge_ids`).
        """
        if len(graphs) != len(self.convs) or len(eweights) != len(graphs):
            raise ValueError(f"gcn has {len(self.convs)} layers: pass one graph and one eweight per layer")
        first = graphs[0]
        if FULL_IN_DEGREE in first.ndata:
            deg_in, deg_out = first.ndata[FULL_IN_DEGREE], first.ndata[FULL_OUT_DEGREE]
        else:
            deg_in, deg_out = first.in_degrees(), first.out_degrees()
        deg_in, deg_out = deg_in.to(feat.dtype), deg_out.to(feat.dtype)
        h = self.encoder(feat)
        for i, (conv, graph, eweight) in enumerate(zip(self.convs, graphs, eweights, strict=True)):
            if i:
                h = self.dropout(h)
            if i == 0 or graph is not graphs[i - 1] or eweight is not eweights[i - 1]:
                looped, weight = self._normalised(graph, eweight, deg_in, deg_out, feat.dtype)
            h = conv(looped, h, edge_weight=weight)
        return self.decoder(h)

    def _normalised(
        self,
        graph: dgl.DGLGraph,
        eweight: torch.Tensor | None,
        deg_in: torch.Tensor,
        deg_out: torch.Tensor,
        dtype: torch.dtype,
    ) -> tuple[dgl.DGLGraph, torch.Tensor]:
        """``graph`` with the self-loops (if any) and the edge weights w_ij / sqrt(d_out(j) d_in(i))."""
        weight = edge_weights(graph, eweight, dtype).squeeze(1)
        if self.self_loops:
            n = graph.num_nodes()
            # add_self_loop appends the new edges after the existing ones, so weights line up.
            graph = dgl.add_self_loop(graph)
            weight = torch.cat([weight, weight.new_ones(n)])
            deg_in, deg_out = deg_in + 1, deg_out + 1
        # D_in^-1/2 A D_out^-1/2 as edge weights: GraphConv's norm='both' (degrees clamped at 1).
        src, dst = graph.edges()
        return graph, weight * (deg_out.clamp(min=1)[src.long()] * deg_in.clamp(min=1)[dst.long()]).rsqrt()
