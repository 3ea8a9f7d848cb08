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

from glassgnn.config.checks import ConfigError, check_type
from glassgnn.config.cli import KeyValues, add_arguments
from glassgnn.config.resolution import dump, load_resolved, model_hparams, resolve, yaml_text
from glassgnn.config.schema import (
    AUGMENTS,
    BASELINES,
    BUDGET_KEYS,
    RUNTIME_KEYS,
    SCHEDULERS,
    SELECTION_METRICS,
    SET_FROM_DATA,
    TYPE_ENCODINGS,
    ResolvedConfig,
    TrainConfig,
    defaults,
    readout_config,
)

__all__ = [
    "AUGMENTS",
    "BASELINES",
    "BUDGET_KEYS",
    "RUNTIME_KEYS",
    "SCHEDULERS",
    "SELECTION_METRICS",
    "SET_FROM_DATA",
    "TYPE_ENCODINGS",
    "ConfigError",
    "KeyValues",
    "ResolvedConfig",
    "TrainConfig",
    "add_arguments",
    "check_type",
    "defaults",
    "dump",
    "load_resolved",
    "model_hparams",
    "readout_config",
    "resolve",
    "yaml_text",
]
