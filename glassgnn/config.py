"""One configuration truth for training: defaults, YAML sections, command-line flags.

Precedence (lowest to highest)::

    built-in defaults (TrainConfig) < `global` section < a recipe (`recipes.NAME`, chosen by
    --recipe or by `global`) < the model's section < flags given

The `global` section of ``train.conf.yaml`` holds training keys; a model's section
may hold training keys and that model's hyperparameters (keys of its registered
config dataclass). Everything is validated before any work: an unknown key or a
wrong type is an error naming the key and what is allowed.

The resolved configuration is a frozen :class:`ResolvedConfig`: every training key
as an attribute plus ``model``, a read-only mapping of hyperparameters. It is written
to ``OUTPUT_DIR/config.yaml`` (with ``in_dim``/``out_dim`` filled in) and can be read
back with ``--config`` to repeat a run from it alone. A value that legitimately
changes later (a budget raised on resume, the data dimensions) makes a new object
with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

from glassgnn.losses import LOSSES
from glassgnn.manifest import TASKS
from models.models import get_entry, make_config, model_config_keys, model_names
from models.readout import READOUT_OPS, ReadoutConfig

if TYPE_CHECKING:
    from glassgnn.task_kind import TaskKind

SCHEDULERS = ("none", "step", "plateau", "cosine")
AUGMENTS = ("none", "cubic", "rotation")
TYPE_ENCODINGS = ("onehot", "scalar")
BASELINES = ("none", "ridge")
# Selection metrics and whether larger is better.
SELECTION_METRICS = {
    "pearson": True,
    "spearman": True,
    "r2": True,
    "mae": False,
    "rmse": False,
    "loss": False,
}
# Keys that change how a run is executed but never its numbers; they may differ on --resume.
RUNTIME_KEYS = (
    "device",
    "num_workers",
    "console_log",
    "log_level",
    "save_results",
    "flush_denormal",
    "reuse_freed_memory",
)
SET_FROM_DATA = ("in_dim", "out_dim")
# Keys that bound a run's length: --resume may raise them to continue a finished run.
BUDGET_KEYS = ("max_epoch", "max_time", "max_cpu_time", "patience")


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    """Training keys with their built-in defaults (the lowest precedence level).

    Frozen, containers included (``node_fields`` a tuple, ``readout`` a read-only mapping):
    no module can change a run's settings behind another's back.
    """

    model_name: str | None = _f(None, "registered model to train (required)")
    recipe: str | None = _f(
        None,
        "a named set of training keys from the `recipes` section of train.conf.yaml, applied after "
        "`global` and before the model's section (e.g. cpu: descriptors, ridge baseline, warm-up)",
    )
    dataset_dir: str | None = _f(None, "directory written by construct_graph.py (required)")
    seed: int = _f(0, "random seed (weights, shuffling, augmentation)")
    device: int = _f(-1, "-1 for CPU, k for cuda:k (under torchrun: the local rank's GPU)")
    batch_size: int = _f(1, "graphs per optimisation step (>= split size: full batch)", minimum=1)
    max_epoch: int = _f(1000, "maximum number of epochs", minimum=1)
    eval_interval: int = _f(1, "evaluate train/val metrics every this many epochs", minimum=1)
    patience: int = _f(100, "stop after this many evaluations without validation improvement", minimum=1)
    max_time: float = _f(
        0.0, "stop after this many seconds of training, at an evaluation (0: no limit)", minimum=0.0
    )
    max_cpu_time: float = _f(
        0.0,
        "stop after this many seconds of this process's CPU time, at an evaluation (0: no limit); "
        "the budget of bench/bench_accuracy.py, which does not depend on other jobs' load",
        minimum=0.0,
    )
    learning_rate: float = _f(1e-3, "Adam learning rate", minimum=0.0)
    weight_decay: float = _f(0.0, "Adam weight decay (L2)", minimum=0.0)
    amsgrad: bool = _f(False, "use the AMSGrad variant of Adam")
    grad_clip: float = _f(0.0, "clip the gradient norm to this value (0: off)", minimum=0.0)
    scheduler: str = _f("none", "learning-rate schedule", choices=SCHEDULERS)
    lr_step_size: int = _f(100, "step schedule: epochs between decays", minimum=1)
    lr_gamma: float = _f(0.5, "step/plateau schedule: decay factor", minimum=0.0)
    lr_patience: int = _f(10, "plateau schedule: evaluations without improvement before decay", minimum=0)
    min_lr: float = _f(0.0, "plateau/cosine schedule: lowest learning rate", minimum=0.0)
    warmup_epochs: int = _f(
        0,
        "raise the learning rate linearly from 1/(warmup_epochs+1) of it over this many epochs "
        "(none/step/cosine schedules; the cosine decays over the epochs after it)",
        minimum=0,
    )
    ema_decay: float = _f(
        0.0,
        "evaluate, select and save an exponential moving average of the weights, updated after every "
        "step with this decay (e.g. 0.99; 0: off): steadier validation curves from small batches",
        minimum=0.0,
        below=1.0,
    )
    train_eval_graphs: int = _f(
        0,
        "evaluate train metrics on this many training graphs (a fixed sample drawn with the seed; "
        "0: all): evaluation costs less, selection is on val anyway",
        minimum=0,
    )
    baseline: str = _f(
        "none",
        "ridge: start from the descriptor floor -- the model's output is added to a ridge fit "
        "on the node inputs (closed form, strength chosen on val) through a gate that starts at 0",
        choices=BASELINES,
    )
    input_dropout: float = _f(
        0.0,
        "baseline ridge: drop each node input of the network part with this probability during "
        "training (the ridge part reads them all): regularises a network reading descriptors",
        minimum=0.0,
        below=1.0,
    )
    loss: str = _f(
        "mse",
        "training loss on the standardised targets: mse, or centred_mse (per-particle task: the "
        "MSE after removing each snapshot's mean error, blind to snapshot-wide shifts as "
        "within-snapshot Pearson is; glassgnn/losses.py)",
        choices=LOSSES,
    )
    selection_metric: str = _f("pearson", "validation metric for selection", choices=tuple(SELECTION_METRICS))
    task: str | None = _f(
        None,
        "node: per-particle targets; graph: per-snapshot targets (graph labels); "
        "default (None): the dataset manifest's task",
        choices=TASKS,
    )
    target: str | None = _f(
        None,
        "target column to learn (a name of manifest target_names, or graph_target_names for "
        "task graph; default all)",
    )
    readout: Mapping[str, Any] = _f(
        {},
        "task graph: how a per-particle model gives one value per graph, keys op "
        f"({'|'.join(READOUT_OPS)}), hidden_dim, head_dims, use_mask (models.readout.ReadoutConfig); "
        "merged key by key: built-in < global < model section < --readout KEY=VALUE ...",
    )
    init_from: str | None = _f(
        None,
        "fine-tune: a finished run directory whose validation-selected weights this run starts from "
        "(same model, hyperparameters, node inputs and graph parameters, checked before anything is "
        "written); targets are standardised with this dataset's training split, as in any run "
        "(glassgnn.fine_tune)",
    )
    init_sha256: str | None = _f(
        None,
        "sha256 of the weights --init_from loads: recorded by the run in config.yaml; when set "
        "(--config or --resume of a fine-tuned run) the run's weights must still have it",
    )
    freeze: bool = _f(
        False,
        "with --init_from: train only the decoder (the model's decoder_prefixes: bapst, egnn, gcn, "
        "gcn_edge, symgnn: decoder; schnet, se3: output; mgcn, mpnn: readout; cgcnn: head, and pool "
        "when it pools; mlp, glassmlp: the last layer of net; with baseline ridge also its gate, in a "
        "graph task also readout and head); the rest keeps the loaded weights, is left out of the "
        "optimiser and runs in evaluation mode (batch norm on its running statistics, no dropout)",
    )
    augment: str = _f("none", "random rotations of disp during training", choices=AUGMENTS)
    type_encoding: str = _f("onehot", "particle type input", choices=TYPE_ENCODINGS)
    node_fields: tuple[str, ...] = _f((), "extra per-atom input fields (names of manifest extra_fields)")
    num_exp: int = _f(1, "repeat with seeds seed..seed+N-1 and summarise test metrics", minimum=1)
    num_workers: int = _f(0, "data-loader worker processes", minimum=0)
    flush_denormal: bool = _f(
        True, "CPU: subnormal floats (|x| < 1.2e-38) as zero; up to 2x faster training steps (schnet)"
    )
    reuse_freed_memory: bool = _f(
        False, "keep freed memory for reuse (glibc): faster full-batch steps, higher peak memory"
    )
    save_results: bool = _f(True, "write predictions_{split}.npz and parity plots")
    console_log: bool = _f(False, "also log to the console")
    log_level: int = _f(20, "logging level (10 debug, 20 info, 30 warning)")

    def __post_init__(self) -> None:
        # Validated YAML gives lists and dicts: store immutable copies.
        object.__setattr__(self, "node_fields", tuple(self.node_fields))
        object.__setattr__(self, "readout", MappingProxyType(dict(self.readout)))

    def to_dict(self) -> dict[str, Any]:
        """Every key in field order with plain values (lists, dicts), as ``config.yaml`` holds them."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


@dataclass(frozen=True)
class ResolvedConfig(TrainConfig):
    """The configuration of one run: every training key, and the model's hyperparameters.

    Built by :func:`resolve` and :func:`load_resolved` only after validation; never changed
    afterwards (``dataclasses.replace`` makes a new one).

    Attributes:
        model: hyperparameters of ``model_name`` (read-only); after
            :func:`glassgnn.training.check_run`, complete with ``in_dim``/``out_dim``.
    """

    model: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "model", MappingProxyType(dict(self.model)))


TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
TRAIN_TYPES = typing.get_type_hints(TrainConfig)


def defaults() -> dict:
    """Built-in default of every training key (plain values)."""
    return TrainConfig().to_dict()


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


def _type_name(tp: Any) -> str:
    # Named as YAML and flags give them: a list (stored as a tuple), a dict (a read-only mapping).
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        return f"list[{_type_name(args[0])}]"
    if origin is Mapping:
        return f"dict[{', '.join(_type_name(a) for a in args)}]"
    return getattr(tp, "__name__", None) if isinstance(tp, type) else str(tp).replace("typing.", "")


def check_type(value: Any, tp: Any) -> bool:
    """Whether ``value`` (parsed YAML or flag) fits the annotation ``tp``."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(check_type(value, arg) for arg in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return isinstance(value, list | tuple) and all(check_type(v, inner) for v in value)
    if origin in (dict, Mapping):
        return isinstance(value, Mapping)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _coerce(value: Any, tp: Any) -> Any:
    # PyYAML (YAML 1.1) reads "1e-4" as a string; accept it where a float is expected.
    if isinstance(value, str) and check_type(1.0, tp) and not check_type(value, tp):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check(where: str, key: str, value: Any, tp: Any, meta: dict | None = None) -> Any:
    value = _coerce(value, tp)
    if not check_type(value, tp):
        raise ConfigError(f"{where}: {key} must be of type {_type_name(tp)}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {key} must be a finite number, got {value!r}")
    meta = meta or {}
    if "choices" in meta and value is not None and value not in meta["choices"]:
        raise ConfigError(f"{where}: {key} must be one of {', '.join(meta['choices'])}, got {value!r}")
    if "minimum" in meta and value is not None and value < meta["minimum"]:
        raise ConfigError(f"{where}: {key} must be >= {meta['minimum']}, got {value!r}")
    if "below" in meta and value is not None and not value < meta["below"]:
        raise ConfigError(f"{where}: {key} must be < {meta['below']}, got {value!r}")
    return value


def _check_training(where: str, values: dict) -> dict:
    out = {}
    for key, value in values.items():
        if key not in TRAIN_FIELDS:
            raise ConfigError(f"{where}: unknown key {key!r}; training keys: {', '.join(TRAIN_FIELDS)}")
        out[key] = _check(where, key, value, TRAIN_TYPES[key], dict(TRAIN_FIELDS[key].metadata))
        if key == "readout":
            out[key] = _check_readout(where, out[key])
    return out


READOUT_TYPES = typing.get_type_hints(ReadoutConfig)


def _check_readout(where: str, values: dict) -> dict:
    """Keys and types of a ``readout`` mapping (fields of :class:`models.readout.ReadoutConfig`)."""
    out = {}
    for key, value in values.items():
        if key not in READOUT_TYPES:
            raise ConfigError(f"{where}: unknown readout key {key!r}; known: {', '.join(READOUT_TYPES)}")
        meta = {"choices": READOUT_OPS} if key == "op" else {"minimum": 0} if key == "hidden_dim" else {}
        out[key] = _check(where, f"readout.{key}", value, READOUT_TYPES[key], meta)
    return out


def readout_config(config: TrainConfig) -> dict:
    """Every field of the run's readout: :class:`ReadoutConfig` defaults updated with ``readout``.

    Args:
        config: the run's configuration.
    """
    return dataclasses.asdict(ReadoutConfig(**config.readout))


def _update(resolved: dict, new: dict) -> None:
    """``resolved.update(new)``, except that ``readout`` mappings merge key by key."""
    for key, value in new.items():
        if key == "readout":
            value = {**(resolved.get("readout") or {}), **value}
        resolved[key] = value


def _check_model(where: str, name: str, values: dict, allow_dims: bool = False) -> dict:
    known = model_config_keys(name)
    out = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key {key!r} for model {name!r}; training keys: {', '.join(TRAIN_FIELDS)}; "
                f"hyperparameters of {name}: {', '.join(k for k in known if k not in SET_FROM_DATA)}"
            )
        if key in SET_FROM_DATA and not allow_dims:
            raise ConfigError(f"{where}: {key} is set from the dataset; remove it")
        out[key] = _check(where, key, value, known[key])
    return out


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
    training = _check_training(f"{path} [global]", data.get("global") or {})
    recipes = {
        name: _check_training(f"{path} [{RECIPES}.{name}]", body or {})
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
    _update(training, _check_training(where, {k: v for k, v in section.items() if k in TRAIN_FIELDS}))
    hparams = _check_model(where, model_name, {k: v for k, v in section.items() if k not in TRAIN_FIELDS})
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
    training = _check_training(str(path), data)
    name = training.get("model_name")
    if not name:
        raise ConfigError(f"{path}: model_name is missing")
    _known_model(name, str(path))
    return training, _check_model(f"{path} [model]", name, model, allow_dims=True)


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
    given = _check_training("command line", given)
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


class KeyValues(argparse.Action):
    """``--readout op=sum hidden_dim=64 head_dims=[64]``: a mapping, values read as YAML (also
    construct_graph.py's ``--descriptor_param``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        mapping = {}
        for item in values:
            key, sep, text = item.partition("=")
            if not sep or not key:
                parser.error(f"{option_string}: expected KEY=VALUE, got {item!r}")
            mapping[key] = yaml.safe_load(text)
        setattr(namespace, self.dest, mapping)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per training key; defaults are suppressed so only given flags override."""
    for name, f in TRAIN_FIELDS.items():
        tp = TRAIN_TYPES[name]
        meta = f.metadata
        help_text = f"{meta['help']} (default: {defaults()[name]})"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is Mapping:
            kwargs.update(nargs="+", metavar="KEY=VALUE", action=KeyValues)
        elif typing.get_origin(tp) is tuple:
            kwargs.update(nargs="*", metavar="NAME")
        else:
            # float before int: a float key also accepts ints
            kwargs["type"] = next(t for t in (float, int, str) if check_type(t(), tp))
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
        parser.add_argument(f"--{name}", **kwargs)
