"""Model registry: look models up by exact name and build them from a config mapping.

A model file registers itself with :func:`register_model`, giving its class and
a dataclass of hyperparameters (typed, with the paper's defaults)::

    @dataclass
    class MLPConfig(ModelConfig):
        hidden_dims: list[int] = field(default_factory=lambda: [64, 64])

    @register_model("mlp", MLPConfig)
    class MLP(GlassModel):
        num_message_passing = 0
        invariance = Invariance.SO3
        output_level = OutputLevel.NODE
        def __init__(self, config: MLPConfig): ...
        def forward(self, graph, feat, eweight=None): ...

The class is a :class:`models.contract.GlassModel` and declares what the contract
requires (checked when the file is imported; see :mod:`models.contract`).
``train.py`` never branches on a model's name: it calls :func:`build_model`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from models.contract import GlassModel, check_declarations, check_values


@dataclass
class ModelConfig:
    """Hyperparameters every model takes.

    Attributes:
        in_dim: width of the node input ``feat`` (set by the training code from the data).
        out_dim: number of per-particle outputs.
    """

    in_dim: int = 1
    out_dim: int = 1


@dataclass(frozen=True)
class ModelEntry:
    cls: type[GlassModel]
    config_cls: type[ModelConfig]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config_cls: type[ModelConfig]) -> Callable[[type], type]:
    """Class decorator that registers a model under ``name``.

    Raises:
        ValueError: ``name`` is taken.
        TypeError: the class does not declare what :mod:`models.contract` requires.
    """

    def decorator(cls: type[GlassModel]) -> type[GlassModel]:
        check_declarations(cls, name)
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(cls, config_cls)
        cls.model_name = name
        return cls

    return decorator


def model_names() -> list[str]:
    """Names of all registered models, sorted."""
    _import_all()
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """Registry entry for ``name``; unknown names fail with the list of known ones."""
    if name not in _REGISTRY:
        _import_own_module(name)
    if name not in _REGISTRY:
        _import_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def model_config_keys(name: str) -> dict[str, Any]:
    """Hyperparameter names of model ``name`` mapped to their types."""
    config_cls = get_entry(name).config_cls
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def make_config(name: str, values: Mapping[str, Any]) -> ModelConfig:
    """Validated config dataclass of model ``name``; unknown keys are errors naming the key."""
    config_cls = get_entry(name).config_cls
    known = model_config_keys(name)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise KeyError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for model {name!r}; "
            f"known: {', '.join(sorted(known))}"
        )
    return config_cls(**dict(values))


def build_model(name: str, config: Mapping[str, Any] | ModelConfig) -> GlassModel:
    """Build model ``name`` from a mapping of hyperparameters (or its config dataclass); its
    declared values are checked (:func:`models.contract.check_values`)."""
    entry = get_entry(name)
    if not isinstance(config, ModelConfig):
        config = make_config(name, config)
    model = entry.cls(config)
    check_values(model, name)
    return model


def _import_own_module(name: str) -> None:
    """Import ``models/<name>.py`` alone when it exists: a fresh process that loads one run
    then skips the other models' dependencies (e3nn for se3 takes seconds to import)."""
    import importlib
    import importlib.util

    if name.isidentifier() and importlib.util.find_spec(f"models.{name}") is not None:
        importlib.import_module(f"models.{name}")


def _import_all() -> None:
    """Import every model module so that they register themselves."""
    import importlib
    import pkgutil

    import models

    for info in pkgutil.iter_modules(models.__path__):
        if info.name not in {"models", "common"}:
            importlib.import_module(f"models.{info.name}")
