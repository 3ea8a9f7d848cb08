"""The model zoo: one architecture per file, all behind one interface.

Every model is an ``nn.Module`` built by :func:`models.models.build_model` from
its registered name and a mapping of hyperparameters, and is called as::

    out = model(graph=graph, feat=feat, eweight=eweight)

Args:
    graph: a ``dgl.DGLGraph`` (possibly batched with ``dgl.batch``) following
        :mod:`glassgnn.schema`; edge geometry is read from
        ``graph.edata["disp"]`` [n_edges, 3] (r_dst - r_src, minimum image)
        and ``graph.edata["dist"]`` [n_edges, 1].
    feat: [n_atoms, in_dim] float node input (one-hot particle type, optionally
        followed by extra per-atom fields; see :mod:`glassgnn.features`).
    eweight: optional [n_edges] float weights. Every message along an edge is
        multiplied by its weight, in every layer, so that an explainer can
        switch edges off (0) or keep them (1). ``None`` equals all ones.

Returns:
    [n_atoms, out_dim] per-particle outputs (in normalised target units).

The argument names are fixed: DGL's ``GNNExplainer`` calls
``model(graph=..., feat=..., eweight=...)``. Models keep no state tied to a
graph and run on whatever device the graph and ``feat`` are on, except the
buffers a model declares as ``Ability.TRAINING_CACHE``. Every model is a
:class:`models.contract.GlassModel` that declares its message-passing depth,
invariance, output level and optional abilities (:mod:`models.contract`).
"""

from models.contract import Ability, GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, build_model, model_names, register_model

__all__ = [
    "Ability",
    "GlassModel",
    "Invariance",
    "ModelConfig",
    "OutputLevel",
    "build_model",
    "model_names",
    "register_model",
]
