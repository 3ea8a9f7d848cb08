"""Dataset directories on disk: write ``{train,val,test}.bin`` and ``manifest.json``, load them."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import dgl
import numpy as np
import torch

from glassgnn import schema
from glassgnn.dataset.build import (
    build_records,
    check_params,
    finish_graphs,
    fit_learned_descriptors,
    graph_labels,
    union_type_map,
)
from glassgnn.descriptors import DescriptorParams, default_params, descriptor_names, required_keys
from glassgnn.fileio import atomic_directory, sha256
from glassgnn.manifest import Manifest, Normalisation
from glassgnn.readers import ReaderError, read_snapshots
from glassgnn.task_kind import GRAPH, NODE, task_kind

log = logging.getLogger(__name__)


def load_manifest(directory: str | os.PathLike) -> Manifest:
    """The manifest of a dataset directory.

    Raises:
        FileNotFoundError: ``directory`` has no manifest.
        glassgnn.manifest.ManifestError: the manifest cannot be read.
    """
    path = Path(directory) / schema.MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not a dataset directory (no {schema.MANIFEST}); run construct_graph.py"
        )
    return Manifest.load(path)


def load_split(directory: str | os.PathLike, split: str) -> list[dgl.DGLGraph]:
    """Graphs of one split (``train``, ``val`` or ``test``); [] for an empty split."""
    return _load(directory, split)[0]


def load_split_labels(directory: str | os.PathLike, split: str) -> dict[str, torch.Tensor]:
    """Per-graph labels of a split: ``schema.CELL`` [G, 3, 3], ``CUTOFF`` [G], ``FRAME`` [G],
    and in a graph-task dataset ``GRAPH_TARGET`` [G, k] (original units)."""
    return _load(directory, split)[1]


def load_graph_targets(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``{split: [G, k] float32}`` per-snapshot targets of every split file present.

    Raises:
        ValueError: the dataset was built without ``--graph_target``.
    """
    if not task_kind(load_manifest(directory).task).per_graph:
        raise ValueError(
            f"{directory}: the dataset has no graph targets; build it with construct_graph.py --graph_target"
        )
    return {
        split: _load(directory, split)[1][schema.GRAPH_TARGET]
        for split in schema.SPLITS
        if (Path(directory) / schema.split_file(split)).is_file()
    }


def _load(directory, split):
    path = Path(directory) / schema.split_file(split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing split file; run construct_graph.py")
    if path.stat().st_size == 0:
        labels = {
            schema.CELL: torch.zeros(0, 3, 3),
            schema.CUTOFF: torch.zeros(0),
            schema.FRAME: torch.zeros(0, dtype=torch.int64),
        }
        names = load_manifest(directory).graph_target_names
        if names:
            labels[schema.GRAPH_TARGET] = torch.zeros(0, len(names))
        return [], labels
    try:
        graphs, labels = dgl.load_graphs(str(path))
    except dgl.DGLError as exc:  # its message carries a C++ backtrace: keep the first line
        reason = re.sub(r"^\[[^]]*\] \S+:\d+: ", "", str(exc).strip().splitlines()[0])  # [time] file:line:
        raise ReaderError(
            path, f"truncated or corrupt graph file ({reason}); rebuild it with construct_graph.py"
        ) from None
    for graph in graphs:  # dgl.save_graphs stores bool as uint8
        graph.ndata[schema.MASK] = graph.ndata[schema.MASK].bool()
    return graphs, labels


def _column_stats(values: np.ndarray, names: list[str]) -> dict:
    """count, mean, std, min, max of each column of [n, k] ``values``."""
    if len(values) == 0:
        return {}
    return {
        name: {
            "count": int(len(values)),
            "mean": float(values[:, c].mean()),
            "std": float(values[:, c].std()),
            "min": float(values[:, c].min()),
            "max": float(values[:, c].max()),
        }
        for c, name in enumerate(names)
    }


def _masked_targets(graphs: list[dgl.DGLGraph], width: int) -> np.ndarray:
    """Targets of the masked particles of ``graphs``, [n_masked, k] float64."""
    if not graphs:
        return np.zeros((0, width))
    return torch.cat([g.ndata[schema.TARGET][g.ndata[schema.MASK]] for g in graphs]).double().numpy()


def _check_consistent(records: list[dict], key: str) -> None:
    first = records[0]
    for record in records[1:]:
        if record[key] != first[key]:
            raise ReaderError(
                record["source"], f"{key} {record[key]} differ from {first[key]} of {first['source']}"
            )


def _check_labels(params: dict, type_map: dict[str, int]) -> None:
    """Type labels named in --mask_types and --pair_cutoff must exist in the data."""
    named = set(params["mask_types"]) if isinstance(params["mask_types"], list) else set()
    for pair in params["pair_cutoffs"] or {}:
        named.update(pair.split("-"))
    unknown = sorted(named - set(type_map))
    if unknown:
        raise ValueError(f"type label(s) {unknown} not found in the inputs, whose types are {list(type_map)}")


def _versions() -> dict[str, str]:
    from importlib import metadata
    from platform import python_version

    versions = {"python": python_version()}
    for package in ("numpy", "scipy", "torch", "dgl", "vesin", "ase", "pandas"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _split_fraction(graphs_records: list, fraction: float, seed: int) -> tuple[list, list]:
    """Move a random ``fraction`` of the train graphs (whole frames) to validation."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(graphs_records))
    n_val = max(1, round(fraction * len(graphs_records)))
    if n_val >= len(graphs_records):
        raise ValueError(f"val_fraction {fraction} leaves no training graph out of {len(graphs_records)}")
    val = set(order[:n_val].tolist())
    train = [item for i, item in enumerate(graphs_records) if i not in val]
    return train, [item for i, item in enumerate(graphs_records) if i in val]


def construct_dataset(
    splits: dict[str, list[str]],
    params: dict,
    output_dir: str | os.PathLike,
    val_fraction: float | None = None,
    seed: int = 0,
    num_workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Manifest:
    """Build and write a dataset directory; return its manifest.

    Args:
        splits: split name -> input files (``train`` required; ``val``/``test`` may be empty).
        params: graph parameters (:data:`DEFAULT_PARAMS`).
        output_dir: directory to write; refused if it exists unless ``overwrite``.
        val_fraction: with no ``val`` files, move this fraction of train graphs to val.
        seed: seed of that random split.
        num_workers: processes reading files in parallel.
        overwrite: replace an existing ``output_dir`` (only once the new one is complete).
        progress: tqdm bar over files.

    Normalisation mean/std come from the train split only, over masked particles; with
    ``params["graph_target"]`` the per-snapshot targets are stored as the split files'
    ``schema.GRAPH_TARGET`` label, the manifest gets task ``"graph"``,
    ``graph_target_names`` and ``graph_normalisation`` (train graphs only).
    """
    if not splits.get("train"):
        raise ValueError("the train split has no input file")
    params = check_params(resolve_descriptors(params, splits["train"][0]))
    if val_fraction and splits.get("val"):
        raise ValueError("give either --val files or --val_fraction, not both")
    with atomic_directory(output_dir, overwrite=overwrite) as tmp:
        built = {
            split: build_records(splits.get(split, []), params, num_workers, progress, desc=split)
            for split in schema.SPLITS
        }
        if val_fraction:
            built["train"], built["val"] = _split_fraction(built["train"], val_fraction, seed)
        everything = [record for items in built.values() for _, record in items]
        for key in ("target", "target_names", "extra_fields", "mask_types"):
            _check_consistent(everything, key)
        type_map = union_type_map(everything)
        _warn_unseen_types(built)
        _check_labels(params, type_map)
        params = fit_learned_descriptors(built["train"], type_map, params)
        for split in schema.SPLITS:
            finish_graphs(built[split], type_map, params)
        manifest = _manifest(built, params, type_map)
        for split in schema.SPLITS:
            graphs = [graph for graph, _ in built[split]]
            records = [record for _, record in built[split]]
            _save_split(tmp / schema.split_file(split), graphs, records, params)
            keep = ("source", "frame", "num_nodes", "num_edges", "isolated", "wrapped")
            names = manifest.target_names
            manifest.splits[split] = {
                "graphs": [{key: record[key] for key in keep} for record in records],
                "target_stats": _column_stats(_masked_targets(graphs, len(names)), names),
            }
            if manifest.graph_target_names:
                names = manifest.graph_target_names
                manifest.splits[split]["graph_target_stats"] = _column_stats(
                    _graph_targets(records, len(names)), names
                )
        sources = dict.fromkeys(record["source"] for record in everything)
        manifest.inputs = [{"path": os.path.abspath(path), "sha256": sha256(path)} for path in sources]
        manifest.save(tmp / schema.MANIFEST)
    return manifest


def _manifest(built: dict[str, list], params: dict, type_map: dict[str, int]) -> Manifest:
    """The manifest of the built splits, without per-split counts and inputs: targets and
    extra fields are normalised with train-split statistics (targets over masked particles).

    Raises:
        ValueError: the train split has per-particle targets but no masked particle.
    """
    first = next(record for items in built.values() for _, record in items)
    train_graphs = [graph for graph, _ in built["train"]]
    target_names = first["target_names"]
    train_targets = _masked_targets(train_graphs, len(target_names))
    if target_names and len(train_targets) == 0:
        raise ValueError("no masked particle in the train split: check --mask_types")
    graph_names = params["graph_target"] or []
    train_graph = _graph_targets([record for _, record in built["train"]], len(graph_names))
    descriptors = params["descriptors"]
    return Manifest(
        task=(GRAPH if graph_names else NODE).name,
        type_map=type_map,
        target_names=target_names,
        normalisation=_normalisation(train_targets),
        graph_target_names=graph_names,
        graph_normalisation=_normalisation(train_graph),
        extra_fields=first["extra_fields"],
        field_normalisation=_field_normalisation(train_graphs, first["extra_fields"]),
        descriptor_names=(
            descriptor_names(len(type_map), DescriptorParams.from_dict(descriptors)) if descriptors else []
        ),
        units=first["units"],
        graph={**params, "target": first["target"], "mask_types": first["mask_types"]},
        versions=_versions(),
    )


def _normalisation(values: np.ndarray) -> Normalisation:
    """Mean and std of each column of [n, k] ``values``; a constant column keeps scale 1 (it would
    divide by zero)."""
    if values.shape[1] == 0:
        return Normalisation()
    std = values.std(axis=0)
    return Normalisation(values.mean(axis=0).tolist(), np.where(std > 0, std, 1.0).tolist())


def resolve_descriptors(params: dict, first_train_file: str) -> dict:
    """``params`` with a descriptor set given by name resolved to all its parameters.

    ``params["descriptors"]`` may be None, a set name (``"structure"``), or a mapping
    with ``"name"`` and overrides of some parameters; the defaults of the others come
    from the length scale of the first frame of ``first_train_file``
    (:func:`glassgnn.descriptors.default_params`). A complete mapping (a manifest's) is
    kept as it is.
    """
    spec = params.get("descriptors")
    if spec is None:
        return params
    if isinstance(spec, str):
        spec = {"name": spec}
    overrides = {key: value for key, value in spec.items() if key != "name"}
    if set(required_keys()) - {"name"} <= set(overrides):
        return params
    first = read_snapshots(first_train_file, params.get("format", "auto"), params.get("time_index"))[0]
    resolved = default_params(first.positions, first.cell, spec.get("name", "structure"), **overrides)
    return {**params, "descriptors": resolved.to_dict()}


def _field_normalisation(graphs: list[dgl.DGLGraph], widths: dict[str, int]) -> dict[str, Normalisation]:
    """Train-split mean and std of every extra per-atom field over all particles (inputs are
    standardised with them: glassgnn.features.field_stats). A constant column keeps scale 1."""
    out = {}
    for name in widths:
        values = torch.cat([g.ndata[schema.EXTRA_PREFIX + name].reshape(g.num_nodes(), -1) for g in graphs])
        out[name] = _normalisation(values.double().numpy())
    return out


def _warn_unseen_types(built: dict[str, list]) -> None:
    """Warn about type labels of val or test graphs that no training graph has."""
    seen = {label for _, record in built["train"] for label in record["type_labels"]}
    for split in ("val", "test"):
        unseen: dict[str, set[str]] = {}
        for _, record in built[split]:
            for label in set(record["type_labels"]) - seen:
                unseen.setdefault(label, set()).add(record["source"])
        for label, sources in sorted(unseen.items()):
            log.warning(
                "type %r appears in %s (%s) but in no training graph: the model never sees it in training",
                label,
                split,
                ", ".join(sorted(sources)),
            )


def _graph_targets(records: list[dict], width: int) -> np.ndarray:
    """Per-snapshot targets of ``records``, [n_graphs, k] float64 (k = 0: no graph target)."""
    if width == 0:
        return np.zeros((len(records), 0))
    return np.array([record["graph_target"] for record in records], dtype=np.float64).reshape(-1, width)


def _save_split(path: Path, graphs: list[dgl.DGLGraph], records: list[dict], params: dict) -> None:
    if not graphs:
        path.write_bytes(b"")  # DGL cannot save an empty list; load_split reads this as []
        return
    dgl.save_graphs(str(path), graphs, graph_labels(records, params))
