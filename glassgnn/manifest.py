"""The manifest of a dataset directory (``manifest.json``), also copied into every run directory.

One typed record, read and written only here: ``construct_graph.py`` and the DeepMind
converter write it, training, prediction and explanation read it. The JSON layout is
the one of every existing dataset and run directory, so they load unchanged; fields
added later (``field_normalisation``, ``descriptor_names``, the graph-task fields) take
their empty default when an older file lacks them. Keys this version does not know
are kept verbatim in :attr:`Manifest.unknown` and written back, so a run's copy of a
manifest written by a newer version loses nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glassgnn.fileio import write_json

#: The task kinds: per-particle targets or per-snapshot targets.
TASKS = ("node", "graph")

#: Keys of the file after ``task``, ``type_map`` and ``num_types``, in the order written.
_FILE_KEYS = (
    "target_names",
    "normalisation",
    "graph_target_names",
    "graph_normalisation",
    "extra_fields",
    "field_normalisation",
    "descriptor_names",
    "units",
    "graph",
    "splits",
    "inputs",
    "versions",
)


class ManifestError(ValueError):
    """A manifest file that cannot be read; the message names the file."""


@dataclass
class Normalisation:
    """Train-split mean and std per column, each [k] (a constant column has std 1)."""

    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


@dataclass
class Manifest:
    """What a dataset directory holds and how it was built.

    Attributes:
        type_map: original particle type label -> type index 0..T-1.
        graph: the graph parameters (``glassgnn.dataset.DEFAULT_PARAMS``, resolved, with the
            input's ``target`` and ``mask_types``; ``"descriptors"`` the descriptor parameters
            or None); rebuilding a graph with them gives the dataset's graph.
        task: ``"node"`` (per-particle targets) or ``"graph"`` (per-snapshot targets).
        target_names: [k] names of the columns of ``ndata[schema.TARGET]``.
        normalisation: train-split statistics of those columns over masked particles.
        graph_target_names: [k] names of the columns of the ``schema.GRAPH_TARGET`` label.
        graph_normalisation: train-split statistics of those columns over graphs.
        extra_fields: extra per-atom field name -> width m (``ndata["x_<name>"]``, [n_atoms, m]).
        field_normalisation: per extra field, train-split statistics of its m columns.
        descriptor_names: names of the columns of the descriptor field ([] without descriptors).
        units: quantity -> unit, as the input files state them.
        splits: per split, ``"graphs"`` (per graph source, frame, counts) and target statistics.
        inputs: per input file, ``{"path", "sha256"}``.
        versions: package -> version of the build.
        unknown: keys of the file this version does not read, kept to be written back.
    """

    type_map: dict[str, int]
    graph: dict[str, Any]
    task: str = "node"
    target_names: list[str] = field(default_factory=list)
    normalisation: Normalisation = field(default_factory=Normalisation)
    graph_target_names: list[str] = field(default_factory=list)
    graph_normalisation: Normalisation = field(default_factory=Normalisation)
    extra_fields: dict[str, int] = field(default_factory=dict)
    field_normalisation: dict[str, Normalisation] = field(default_factory=dict)
    descriptor_names: list[str] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    splits: dict[str, dict] = field(default_factory=dict)
    inputs: list[dict] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    unknown: dict[str, Any] = field(default_factory=dict)

    @property
    def num_types(self) -> int:
        """Number of particle types T."""
        return len(self.type_map)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``manifest.json`` (``num_types`` included, as readers of the file expect)."""
        out: dict[str, Any] = {"task": self.task, "type_map": self.type_map, "num_types": self.num_types}
        for name in _FILE_KEYS:
            value = getattr(self, name)
            if isinstance(value, Normalisation):
                value = value.to_dict()
            elif name == "field_normalisation":
                value = {key: stats.to_dict() for key, stats in value.items()}
            out[name] = value
        return {**out, **self.unknown}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest") -> Manifest:
        """Read the JSON object of a manifest file.

        Args:
            data: the parsed ``manifest.json``.
            where: the file, for messages.

        Raises:
            ManifestError: a required key is missing, the task is unknown, or ``num_types``
                disagrees with ``type_map``.
        """
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: not a manifest (a JSON object is expected)")
        missing = [key for key in ("type_map", "graph") if key not in data]
        if missing:
            raise ManifestError(f"{where}: the manifest lacks {', '.join(missing)}")
        kwargs: dict[str, Any] = {"type_map": data["type_map"]}
        for name in ("task", *_FILE_KEYS):
            if name in data:
                kwargs[name] = data[name]
        for name in ("normalisation", "graph_normalisation"):
            if name in kwargs:
                kwargs[name] = _normalisation(kwargs[name], f"{where}: {name}")
        if "field_normalisation" in kwargs:
            kwargs["field_normalisation"] = {
                key: _normalisation(value, f"{where}: field_normalisation {key}")
                for key, value in kwargs["field_normalisation"].items()
            }
        known = {"task", "type_map", "num_types", *_FILE_KEYS}
        manifest = cls(**kwargs, unknown={k: v for k, v in data.items() if k not in known})
        if manifest.task not in TASKS:
            raise ManifestError(f"{where}: task must be one of {', '.join(TASKS)}, got {manifest.task!r}")
        stated = data.get("num_types", manifest.num_types)
        if stated != manifest.num_types:
            raise ManifestError(f"{where}: num_types {stated} but type_map has {manifest.num_types} types")
        return manifest

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        """Read ``path`` (a ``manifest.json``).

        Raises:
            ManifestError: the file is not valid JSON or not a manifest.
        """
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data, str(path))

    def save(self, path: str | os.PathLike) -> None:
        """Write ``path`` atomically (temp-then-rename)."""
        write_json(path, self.to_dict())


def _normalisation(value: Any, where: str) -> Normalisation:
    if not isinstance(value, dict) or set(value) != {"mean", "std"}:
        raise ManifestError(f"{where} must hold exactly mean and std, got {value!r}")
    return Normalisation(list(value["mean"]), list(value["std"]))
