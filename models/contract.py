"""The contract every registered model implements: what it declares, and what each ability promises.

A model is a :class:`GlassModel` (an ``nn.Module``) called as
``model(graph=graph, feat=feat, eweight=eweight)`` (see :mod:`models`). Nothing
about a model is discovered by probing its attributes: it states

- ``num_message_passing``: the number of hops a particle's output depends on (0 for a
  model that never reads a neighbour; from the config for models whose depth is a
  hyperparameter). Explainers cut each particle's L-hop computation subgraph with it.
- ``invariance``: an :class:`Invariance`, what the output is unchanged by.
- ``output_level``: an :class:`OutputLevel`, one row per particle or per graph.
- ``abilities``: a frozenset of :class:`Ability`, the optional methods the explainers,
  the training loop and the fast paths may call. A caller asks ``model.supports(ability)``
  first and never calls the method of an ability the model does not declare.
- ``decoder_prefixes``: the parameter-name prefixes (dot-separated module paths, as in
  ``named_parameters``) of the part that maps the last per-particle features to the output:
  what ``train.py --init_from RUN --freeze`` keeps training while every other parameter is
  frozen (:mod:`glassgnn.fine_tune`). It names at least one parameter, and not all of them
  unless the model is fitted in closed form (never fine-tuned: ``ridge``'s one layer).
- ``required_fields`` (optional, default none): extra node fields among the inputs that
  the model needs, e.g. ``("descriptors",)`` for the descriptor models.

``num_message_passing``, ``invariance``, ``output_level`` and ``decoder_prefixes`` are class
attributes or, when they depend on the config, properties;
``abilities`` is one frozenset per class (what a model can do does not depend on its config).
:class:`models.readout.GraphLevelModel`, which wraps a registered model, takes its
declarations from the model it wraps.
:func:`models.models.register_model` checks the declarations when the model's file
is imported (:func:`check_declarations`) and :func:`models.models.build_model` checks
the values of the built model (:func:`check_values`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping

import dgl
import torch
from torch import nn


class Invariance(enum.StrEnum):
    """What leaves a model's output unchanged (besides translations and relabelling particles)."""

    SO3 = "so3"  # every rotation
    O3 = "o3"  # every rotation and reflection
    CUBIC = "cubic"  # the 48 symmetries of the cube only
    NONE = "none"  # neither rotations nor reflections


class OutputLevel(enum.StrEnum):
    NODE = "node"  # [n_atoms, out_dim]
    GRAPH = "graph"  # [n_graphs, out_dim]


class Ability(enum.Enum):
    """Optional abilities; :data:`METHODS` names the method each implies (documented on
    :class:`GlassModel`)."""

    LAYERS = "layers"  # each message-passing layer on its own graph
    BLOCKS = "blocks"  # forward_layers also takes DGL blocks (needs LAYERS)
    SUBGRAPH_CONTEXT = "subgraph_context"  # node data a subgraph needs to give full-graph outputs
    COMPILED = "compiled"  # a torch.compile'd path
    NODE_EMBEDDING = "node_embedding"  # per-particle embeddings (PGExplainer's edge input)
    TRAINING_CACHE = "training_cache"  # buffers kept between training steps
    CLOSED_FORM_FIT = "closed_form_fit"  # fitted in closed form, not by gradient steps


METHODS = {
    Ability.LAYERS: "forward_layers",
    Ability.SUBGRAPH_CONTEXT: "subgraph_context",
    Ability.COMPILED: "use_compiled",
    Ability.NODE_EMBEDDING: "embed_nodes",
    Ability.TRAINING_CACHE: "release_cache",
    Ability.CLOSED_FORM_FIT: "fit_closed_form",
}
# Abilities that only make sense together with another one.
REQUIRES = {Ability.BLOCKS: Ability.LAYERS}
REQUIRED = ("num_message_passing", "invariance", "output_level", "decoder_prefixes")


class GlassModel(nn.Module):
    """Base class of every registered model (see the module docstring for the declarations).

    The methods below belong to one :class:`Ability` each; the base versions refuse, so a
    model overrides exactly the methods of the abilities it declares (checked at registration).
    """

    num_message_passing: int
    invariance: Invariance
    output_level: OutputLevel
    # Parameter-name prefixes of the output part (what --freeze keeps training), e.g. ("decoder",).
    decoder_prefixes: tuple[str, ...]
    abilities: frozenset[Ability] = frozenset()
    # Extra node fields the model cannot work without (e.g. ridge's "descriptors"); the
    # training code refuses a run whose node_fields lack them, before anything is written.
    required_fields: tuple[str, ...] = ()

    def supports(self, ability: Ability) -> bool:
        """Whether the model declares ``ability`` (callers ask before calling its method)."""
        return ability in self.abilities

    def forward_layers(
        self, graphs: list[dgl.DGLGraph], feat: torch.Tensor, eweights: list[torch.Tensor | None]
    ) -> torch.Tensor:
        """``Ability.LAYERS``: layer l (1..L, L = ``num_message_passing``) reads ``graphs[l-1]`` (all
        particles, any subset of the edges with their data) weighted by ``eweights[l-1]`` [its
        n_edges]; ``forward`` equals this with the same graph and weight for every layer. Returns
        [n_atoms, out_dim]. With ``Ability.BLOCKS`` the graphs may be DGL blocks (layer l's source
        nodes are layer l-1's destination nodes, ``feat`` is given for the first block's source
        nodes, the rows returned are the last block's destination nodes)."""
        raise self._undeclared(Ability.LAYERS)

    def subgraph_context(self, graph: dgl.DGLGraph) -> Mapping[str, torch.Tensor]:
        """``Ability.SUBGRAPH_CONTEXT``: ``{key: [n_atoms, ...]}`` node data computed on the full
        ``graph`` that an L-hop computation subgraph must carry (in ``ndata``) to give the
        full-graph outputs (e.g. GCN's degree normalisation, set by particles one hop further)."""
        raise self._undeclared(Ability.SUBGRAPH_CONTEXT)

    def use_compiled(self, enabled: bool = True) -> None:
        """``Ability.COMPILED``: run later calls through ``torch.compile`` (``False``: eagerly
        again); the outputs are the eager ones up to float rounding, and a failing compiler
        falls back to eager with one warning (:class:`models.compile.CompiledOrEager`)."""
        raise self._undeclared(Ability.COMPILED)

    def embed_nodes(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``Ability.NODE_EMBEDDING``: [n_atoms, d] per-particle embeddings after the last
        message-passing layer (what the output head reads); PGExplainer builds its edge input from
        them. Models without it are explained from ``[feat, output]``."""
        raise self._undeclared(Ability.NODE_EMBEDDING)

    def release_cache(self) -> None:
        """``Ability.TRAINING_CACHE``: free the buffers the model keeps between training steps to
        save allocations (their values never change an output). The training loop calls it when
        training ends and the explainers before they start; the model also frees them itself on
        any path that does not use them."""
        raise self._undeclared(Ability.TRAINING_CACHE)

    def fit_closed_form(
        self, rows: Iterable[tuple[torch.Tensor, torch.Tensor]], score: Callable[[], float]
    ) -> list[dict[str, float]]:
        """``Ability.CLOSED_FORM_FIT``: set the parameters in closed form (no gradient steps).

        Args:
            rows: the training particles as chunks ``(feat [n, in_dim], target [n, out_dim])``
                (masked rows, normalised targets).
            score: evaluates the model as it is now on the validation split; larger is better.

        The model tries each of its candidate settings (e.g. regularisation strengths), calls
        ``score`` for each, and keeps the best. Returns one ``{"setting": value, ..., "score": s}``
        per candidate in the order tried. Only for models of depth 0, whose outputs are a
        function of ``feat`` row by row."""
        raise self._undeclared(Ability.CLOSED_FORM_FIT)

    def _undeclared(self, ability: Ability) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} does not declare {ability}")


def _declared_below_base(cls: type, name: str) -> bool:
    """``name`` is defined by ``cls`` or a base class other than :class:`GlassModel`."""
    return any(name in vars(k) for k in cls.__mro__ if k is not GlassModel and issubclass(k, GlassModel))


def check_declarations(cls: type, name: str) -> None:
    """Refuse a model class (registered as ``name``) that does not state what the contract requires.

    Raises:
        TypeError: not a :class:`GlassModel`, a required attribute missing, an ability whose
            method is not overridden, a method overridden whose ability is not declared, or an
            ability without the one it needs.
    """
    where = f"model {name!r} ({cls.__module__}.{cls.__qualname__})"
    if not (isinstance(cls, type) and issubclass(cls, GlassModel)):
        raise TypeError(f"{where} must subclass models.contract.GlassModel")
    missing = [attr for attr in REQUIRED if not _declared_below_base(cls, attr)]
    if missing:
        raise TypeError(f"{where} does not declare {', '.join(missing)} (see models/contract.py)")
    abilities = cls.abilities
    if not isinstance(abilities, frozenset) or not all(isinstance(a, Ability) for a in abilities):
        raise TypeError(f"{where}: abilities must be a frozenset of models.contract.Ability")
    for ability, method in METHODS.items():
        overridden = _declared_below_base(cls, method)
        if ability in abilities and not overridden:
            raise TypeError(f"{where} declares {ability} but does not define {method}()")
        if overridden and ability not in abilities:
            raise TypeError(f"{where} defines {method}() but does not declare {ability}")
    for ability, needed in REQUIRES.items():
        if ability in abilities and needed not in abilities:
            raise TypeError(f"{where} declares {ability} without {needed}")


def check_values(model: GlassModel, name: str) -> None:
    """Refuse a built model whose declared values are out of range (one line naming the model)."""
    where = f"model {name!r}"
    depth = model.num_message_passing
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise TypeError(f"{where}: num_message_passing must be an int >= 0, got {depth!r}")
    if model.invariance not in set(Invariance):
        known = ", ".join(Invariance)
        raise TypeError(f"{where}: invariance {model.invariance!r} is not one of {known}")
    if model.output_level not in set(OutputLevel):
        raise TypeError(f"{where}: output_level {model.output_level!r} is not one of node, graph")
    prefixes = model.decoder_prefixes
    if not (isinstance(prefixes, tuple) and prefixes and all(isinstance(p, str) and p for p in prefixes)):
        raise TypeError(f"{where}: decoder_prefixes must be a non-empty tuple of names, got {prefixes!r}")
    if model.supports(Ability.CLOSED_FORM_FIT) and depth != 0:
        raise TypeError(f"{where}: {Ability.CLOSED_FORM_FIT} needs num_message_passing 0, got {depth}")
