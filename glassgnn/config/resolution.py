"""Resolving one run's configuration from ``train.conf.yaml``, a ``config.yaml`` and flags,
and writing ``config.yaml`` back (the precedence is in :mod:`glassgnn.config`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from glassgnn.config.checks import ConfigError, check_model, check_training
from glassgnn.config.schema import TRAIN_FIELDS, ResolvedConfig, defaults, readout_config
from models.models import get_entry, make_config, model_names

if TYPE_CHECKING:
    from glassgnn.task_kind import TaskKind


def _update(resolved: dict, new: dict) -> None:
    """``resolved.update(new)``, except that ``readout`` mappings merge key by key."""
    for key, value in new.items():
        if key == "readout":
            value = {**(resolved.get("readout") or {}), **value}
        resolved[key] = value


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


RECIPES = "recipes"


def _sections(path: Path, model_name: str, recipe: str | None) -> tuple[dict, dict]:
    """Training keys and model hyperparameters from ``train.conf.yaml``: ``global``, then the
    recipe ``recipes[recipe]`` (named by ``recipe`` or by ``global``), then the model's section."""
    data = _load_yaml(path)
    registered = model_names()
    for section, body in data.items():
        if section not in ("global", RECIPES) and section not in registered:
            raise ConfigError(
                f"{path}: section {section!r} is neither 'global' nor a registered model "
                f"({', '.join(registered)}) nor '{RECIPES}'"
            )
        if body is not None and not isinstance(body, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping")
    training = check_training(f"{path} [global]", data.get("global") or {})
    recipes = {
        name: check_training(f"{path} [{RECIPES}.{name}]", body or {})
        for name, body in (data.get(RECIPES) or {}).items()
    }
    for name, body in recipes.items():
        if "recipe" in body:
            raise ConfigError(f"{path} [{RECIPES}.{name}]: a recipe cannot name another recipe")
    recipe = recipe or training.get("recipe")
    if recipe is not None:
        if recipe not in recipes:
            known = ", ".join(recipes) or "none"
            raise ConfigError(f"recipe {recipe!r} is not in {path} (recipes: {known})")
        _update(training, {**recipes[recipe], "recipe": recipe})
    section = data.get(model_name) or {}
    where = f"{path} [{model_name}]"
    if "recipe" in section:
        raise ConfigError(f"{where}: choose a recipe in `global` or with --recipe, not in a model section")
    _update(training, check_training(where, {k: v for k, v in section.items() if k in TRAIN_FIELDS}))
    hparams = check_model(where, model_name, {k: v for k, v in section.items() if k not in TRAIN_FIELDS})
    return training, hparams


def _read_resolved(path: Path) -> tuple[dict, dict]:
    """The training keys a ``config.yaml`` holds (validated; maybe not all of them) and its
    model hyperparameters."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    data = _load_yaml(path)
    model = data.pop("model", None) or {}
    if not isinstance(model, dict):
        raise ConfigError(f"{path}: 'model' must be a mapping of hyperparameters")
    training = check_training(str(path), data)
    name = training.get("model_name")
    if not name:
        raise ConfigError(f"{path}: model_name is missing")
    _known_model(name, str(path))
    return training, check_model(f"{path} [model]", name, model, allow_dims=True)


def load_resolved(path: str | os.PathLike) -> ResolvedConfig:
    """Read and validate a resolved ``config.yaml`` written by :func:`dump`.

    Training keys the file lacks (a run written before they existed, or the DeepMind
    converter's short file) take their built-in defaults.

    Args:
        path: the ``config.yaml``.

    Raises:
        ConfigError: the file is missing, not YAML, or holds an invalid key or value.
    """
    training, hparams = _read_resolved(Path(path))
    return ResolvedConfig(**training, model=hparams)


def _known_model(name: str, where: str) -> None:
    try:
        get_entry(name)
    except KeyError as err:
        raise ConfigError(f"{where}: {err.args[0]}") from None


def resolve(
    given: dict, model_config_path: str | os.PathLike | None = None, config: str | None = None
) -> ResolvedConfig:
    """Resolve the configuration of one run.

    Args:
        given: training keys given on the command line (only those actually given).
        model_config_path: ``train.conf.yaml``; ``None`` means built-in defaults only.
        config: a resolved ``config.yaml`` to start from instead of ``train.conf.yaml``.

    Returns:
        Every training key, and ``model``: hyperparameters (in_dim/out_dim only if they
        came from ``config``).

    Raises:
        ConfigError: any invalid key or value.
    """
    given = check_training("command line", given)
    resolved = defaults()
    hparams: dict = {}
    if config is not None:
        base, hparams = _read_resolved(Path(config))
        if "model_name" in given and given["model_name"] != base["model_name"]:
            raise ConfigError(
                f"--model_name {given['model_name']} contradicts {config} ({base['model_name']})"
            )
        _update(resolved, base)
    else:
        name = given.get("model_name")
        if not name:
            raise ConfigError(f"--model_name is required; known models: {', '.join(model_names())}")
        _known_model(name, "--model_name")
        if model_config_path is not None:
            if not Path(model_config_path).is_file():
                raise ConfigError(f"{model_config_path}: no such model configuration file")
            training, hparams = _sections(Path(model_config_path), name, given.get("recipe"))
            _update(resolved, training)
    _update(resolved, given)
    for key in ("model_name", "dataset_dir"):
        if not resolved.get(key):
            raise ConfigError(f"{key} is required (flag --{key})")
    make_config(resolved["model_name"], hparams)  # constructs the dataclass: catches bad combinations
    return ResolvedConfig(**resolved, model=hparams)


def model_hparams(config: ResolvedConfig, in_dim: int, out_dim: int, kind: TaskKind) -> dict:
    """Complete hyperparameters of the resolved model (registry defaults filled in) with data dims.

    A ``config.yaml`` that carries in_dim/out_dim must agree with the data. A model that
    pools itself (one with a ``pooling`` hyperparameter, i.e. ``cgcnn``) pools with the
    readout's ``op`` in a per-graph task unless its section sets ``pooling``, and must
    not pool in a per-particle one.

    Args:
        config: the run's configuration (``model_name``, ``model``, ``readout``).
        in_dim, out_dim: model input width and number of learned targets, from the data.
        kind: the run's task kind (:data:`glassgnn.task_kind.NODE` or ``GRAPH``).
    """
    name = config.model_name
    hparams = dict(config.model)
    for key, value in (("in_dim", in_dim), ("out_dim", out_dim)):
        if key in hparams and hparams[key] != value:
            raise ConfigError(f"model {key}={hparams[key]} in the configuration but the data gives {value}")
        hparams[key] = value
    hparams = dataclasses.asdict(make_config(name, hparams))
    if "pooling" in hparams:
        if kind.per_graph and hparams["pooling"] == "none":
            hparams["pooling"] = readout_config(config)["op"]
        elif not kind.per_graph and hparams["pooling"] != "none":
            raise ConfigError(
                f"{name}: pooling {hparams['pooling']!r} gives one value per graph but the task is "
                f"{kind.name}; set pooling: none or train with --task graph"
            )
    return hparams


def dump(config: ResolvedConfig) -> str:
    """YAML text of a resolved configuration, the layout of ``config.yaml`` (:func:`yaml_text`)."""
    training = config.to_dict()
    return yaml_text(training, training.pop("model"))


def yaml_text(training: Mapping[str, Any], model: Mapping[str, Any]) -> str:
    """The ``config.yaml`` layout: training keys in the order given, then the ``model`` mapping.

    Args:
        training: training keys with plain values; a subset is allowed (the DeepMind converter
            writes a few, :func:`load_resolved` fills in the rest from the defaults).
        model: the model's hyperparameters.
    """
    text = yaml.safe_dump(dict(training), sort_keys=False, default_flow_style=None)
    return text + yaml.safe_dump({"model": dict(model)}, sort_keys=False, default_flow_style=None)
