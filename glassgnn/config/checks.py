"""Validation of configuration values: keys known, types as annotated, bounds respected.

Every error is a :class:`ConfigError` naming where the value came from (a file and
section, or the command line), the key, and what is allowed.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from glassgnn.config.schema import SET_FROM_DATA, TRAIN_FIELDS, TRAIN_TYPES
from models.models import model_config_keys
from models.readout import READOUT_OPS, ReadoutConfig


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


def check_value(where: str, key: str, value: Any, tp: Any, meta: dict | None = None) -> Any:
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


def check_training(where: str, values: dict) -> dict:
    out = {}
    for key, value in values.items():
        if key not in TRAIN_FIELDS:
            raise ConfigError(f"{where}: unknown key {key!r}; training keys: {', '.join(TRAIN_FIELDS)}")
        out[key] = check_value(where, key, value, TRAIN_TYPES[key], dict(TRAIN_FIELDS[key].metadata))
        if key == "readout":
            out[key] = check_readout(where, out[key])
    return out


READOUT_TYPES = typing.get_type_hints(ReadoutConfig)


def check_readout(where: str, values: dict) -> dict:
    """Keys and types of a ``readout`` mapping (fields of :class:`models.readout.ReadoutConfig`)."""
    out = {}
    for key, value in values.items():
        if key not in READOUT_TYPES:
            raise ConfigError(f"{where}: unknown readout key {key!r}; known: {', '.join(READOUT_TYPES)}")
        meta = {"choices": READOUT_OPS} if key == "op" else {"minimum": 0} if key == "hidden_dim" else {}
        out[key] = check_value(where, f"readout.{key}", value, READOUT_TYPES[key], meta)
    return out


def check_model(where: str, name: str, values: dict, allow_dims: bool = False) -> dict:
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
        out[key] = check_value(where, key, value, known[key])
    return out
