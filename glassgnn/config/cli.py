"""Command-line flags of the training keys (``train.py``) and the ``KEY=VALUE`` mapping action."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Mapping
from typing import Any

import yaml

from glassgnn.config.checks import check_type
from glassgnn.config.schema import TRAIN_FIELDS, TRAIN_TYPES, defaults


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
