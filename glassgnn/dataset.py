"""Dataset directories: build graphs from files, write and load ``DIR/{train,val,test}.bin``.

A dataset directory (written by ``construct_graph.py``) holds one ``dgl.save_graphs``
file per split (an empty split is an empty file) with the per-graph labels of
:mod:`glassgnn.schema`, and ``manifest.json`` (inputs with sha256, the graph
parameters, the type mapping, target names, normalisation from the train split,
per-graph counts, package versions). ``build_graphs(paths, manifest["graph"],
type_map=manifest["type_map"])`` rebuilds graphs exactly as the dataset did.
"""

from __future__ import annotations

import glob
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dgl
import numpy as np
import torch
from tqdm import tqdm

from glassgnn import schema
from glassgnn.graph import build_graph
from glassgnn.neighbors import perpendicular_widths, wrap
from glassgnn.readers import FORMATS, ReaderError, Snapshot, read_snapshots
from glassgnn.readers.base import label_sort_key

log = logging.getLogger(__name__)

#: Graph parameters and their defaults; ``manifest["graph"]`` stores all of them.
DEFAULT_PARAMS = {
    "format": "auto",
    "cutoff": None,  # Å or LJ sigma; required unless knn is given
    "knn": None,
    "pair_cutoffs": None,  # {"1-2": 3.4}: cutoff per pair of original type labels
    "self_loops": False,
    "target": None,  # field name; None: the reader's default (may be no target)
    "time_index": None,  # bapst: one propensity time index; None: all
    "mask_types": None,  # type labels in loss and metrics, or "all"; None: the reader's default
}


def check_params(params: dict) -> dict:
    """Complete ``params`` with defaults and validate them; raise ValueError naming the key."""
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown graph parameter(s) {unknown}; known: {sorted(DEFAULT_PARAMS)}")
    params = {**DEFAULT_PARAMS, **params}
    if params["format"] not in ("auto", *FORMATS):
        raise ValueError(f"unknown format {params['format']!r}; known: auto, {', '.join(FORMATS)}")
    cutoff, knn = params["cutoff"], params["knn"]
    if cutoff is not None and not (np.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff must be a positive number, got {cutoff}")
    if knn is not None and knn < 1:
        raise ValueError(f"knn must be at least 1, got {knn}")
    if cutoff is None and knn is None and not params["pair_cutoffs"]:
        raise ValueError("give a cutoff (--cutoff), per-pair cutoffs or k nearest neighbours (--knn)")
    for pair, value in (params["pair_cutoffs"] or {}).items():
        if len(pair.split("-")) != 2 or not (np.isfinite(value) and value > 0):
            raise ValueError(f"pair cutoff {pair}={value}: expected 'LABEL-LABEL' and a positive number")
    if params["pair_cutoffs"] and knn is not None:
        raise ValueError("per-pair cutoffs and knn cannot be combined")
    return params


def _pair_matrix(snapshot: Snapshot, params: dict) -> np.ndarray | None:
    """[T, T] cutoffs over the snapshot's type indices from ``{"a-b": r}`` label pairs."""
    if not params["pair_cutoffs"]:
        return None
    index = snapshot.type_map
    default = params["cutoff"] if params["cutoff"] is not None else 0.0
    matrix = np.full((len(index), len(index)), default, dtype=np.float64)
    for pair, value in params["pair_cutoffs"].items():
        a, b = pair.split("-")
        if a in index and b in index:
            matrix[index[a], index[b]] = matrix[index[b], index[a]] = value
    if (matrix <= 0).any():
        raise ReaderError(snapshot.source, "a type pair has no cutoff: give --cutoff as the default")
    return matrix


def _snapshot_graph(snapshot: Snapshot, params: dict, require_target: bool) -> tuple[dgl.DGLGraph, dict]:
    """Graph of one snapshot (types still in the snapshot's own mapping) and its record."""
    target = params["target"] or snapshot.default_target
    if params["target"] and params["target"] not in snapshot.fields and require_target:
        raise ReaderError(
            snapshot.source, f"no field {target!r} to use as target (has: {sorted(snapshot.fields)})"
        )
    has_target = target is not None and target in snapshot.fields
    n_atoms = snapshot.num_atoms
    mask_labels = params["mask_types"] if params["mask_types"] is not None else snapshot.default_mask_labels
    mask_labels = "all" if mask_labels in (None, "all") else [str(label) for label in mask_labels]
    mask = None
    if mask_labels != "all":
        mask = np.isin(np.asarray(snapshot.type_labels)[snapshot.types], mask_labels)
    graph = build_graph(
        snapshot.positions,
        snapshot.types,
        snapshot.cell,
        params["cutoff"],
        targets=snapshot.fields[target] if has_target else np.zeros((n_atoms, 0)),
        mask=mask,
        self_loops=params["self_loops"],
        knn=params["knn"],
        pair_cutoffs=_pair_matrix(snapshot, params),
        extra_fields={k: v for k, v in snapshot.fields.items() if k != target},
    )
    reach = max([params["cutoff"] or 0.0, *(params["pair_cutoffs"] or {}).values()])
    if reach >= perpendicular_widths(snapshot.cell).min() / 2:
        log.warning(
            "%s frame %d: cutoff %g reaches beyond half the cell (widths %s): every periodic image "
            "within it is an edge, so a pair can be connected several times",
            snapshot.source,
            snapshot.frame,
            reach,
            np.round(perpendicular_widths(snapshot.cell), 4).tolist(),
        )
    degree = graph.in_degrees() - int(params["self_loops"])
    isolated = int((degree == 0).sum())
    if isolated:
        log.warning("%s frame %d: %d atoms have no neighbour", snapshot.source, snapshot.frame, isolated)
    record = {
        "source": snapshot.source,
        "frame": snapshot.frame,
        "num_nodes": n_atoms,
        "num_edges": graph.num_edges(),
        "isolated": isolated,
        "wrapped": wrap(snapshot.positions, snapshot.cell)[1],
        "type_labels": snapshot.type_labels,
        "target_names": snapshot.target_columns(target) if has_target else [],
        "mask_types": mask_labels,
        "target": target if has_target else None,
        "extra_fields": {
            k: (int(v.shape[1]) if v.ndim == 2 else 1) for k, v in snapshot.fields.items() if k != target
        },
        "cell": snapshot.cell,
        "units": snapshot.units,
    }
    return graph, record


def _process_file(path: str, params: dict, require_target: bool = True) -> list[tuple[dgl.DGLGraph, dict]]:
    snapshots = read_snapshots(path, params["format"], time_index=params["time_index"])
    return [_snapshot_graph(snapshot, params, require_target) for snapshot in snapshots]


def _run(
    paths: list[str], params: dict, num_workers: int, progress: bool, require_target=True, desc="graphs"
):
    """Build graphs of every file (in input order), in ``num_workers`` processes."""
    bar = tqdm(total=len(paths), desc=desc, unit="file", disable=not progress or not paths)
    results = []
    if num_workers <= 1 or len(paths) <= 1:
        for path in paths:
            results.extend(_process_file(path, params, require_target))
            bar.update()
    else:
        # fork: workers inherit the imported modules (spawn would re-import torch and DGL).
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(num_workers, mp_context=context) as pool:
            for items in pool.map(_process_file, paths, [params] * len(paths), [require_target] * len(paths)):
                results.extend(items)
                bar.update()
    bar.close()
    return results


def union_type_map(records: list[dict]) -> dict[str, int]:
    """A type map over every label seen, sorted numerically then by text (``"1"``, ``"2"``)."""
    labels = sorted({label for record in records for label in record["type_labels"]}, key=label_sort_key)
    return {label: index for index, label in enumerate(labels)}


def _apply_type_map(graph: dgl.DGLGraph, record: dict, type_map: dict[str, int]) -> None:
    unknown = [label for label in record["type_labels"] if label not in type_map]
    if unknown:
        raise ReaderError(
            record["source"], f"type(s) {unknown} not in the dataset's type map {sorted(type_map)}"
        )
    lookup = torch.tensor([type_map[label] for label in record["type_labels"]], dtype=torch.int64)
    graph.ndata[schema.TYPE] = lookup[graph.ndata[schema.TYPE]]


def build_graphs(
    paths: list[str],
    graph_params: dict,
    type_map: dict[str, int] | None = None,
    num_workers: int = 1,
    progress: bool = False,
    require_target: bool = False,
) -> list[dgl.DGLGraph]:
    """Graphs of every frame of every file, built with a dataset's parameters.

    Args:
        paths: input files.
        graph_params: ``manifest["graph"]`` (see :data:`DEFAULT_PARAMS`).
        type_map: ``manifest["type_map"]``; None derives one from the files.
        num_workers: processes reading files in parallel.
        progress: show a tqdm bar over files.
        require_target: fail when a file lacks the target field; otherwise such a
            graph gets ``ndata["y"]`` of shape [n_atoms, 0] (prediction on new data).
    """
    params = check_params(graph_params)
    results = _run([str(p) for p in paths], params, num_workers, progress, require_target)
    records = [record for _, record in results]
    type_map = type_map or union_type_map(records)
    for graph, record in results:
        _apply_type_map(graph, record, type_map)
    return [graph for graph, _ in results]


def expand_globs(patterns: list[str], flag: str) -> list[str]:
    """Files matching any of ``patterns`` (sorted, duplicates removed); error when one matches none."""
    paths = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not matched:
            raise FileNotFoundError(f"{pattern}: no input matched {flag}")
        paths.extend(m for m in matched if m not in paths)
    return paths


def load_manifest(directory: str | os.PathLike) -> dict:
    """The manifest of a dataset directory."""
    import json

    path = Path(directory) / schema.MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not a dataset directory (no {schema.MANIFEST}); run construct_graph.py"
        )
    return json.loads(path.read_text())


def load_split(directory: str | os.PathLike, split: str) -> list[dgl.DGLGraph]:
    """Graphs of one split (``train``, ``val`` or ``test``); [] for an empty split."""
    return _load(directory, split)[0]


def load_split_labels(directory: str | os.PathLike, split: str) -> dict[str, torch.Tensor]:
    """Per-graph labels of a split: ``schema.CELL`` [G, 3, 3], ``CUTOFF`` [G], ``FRAME`` [G]."""
    return _load(directory, split)[1]


def _load(directory, split):
    path = Path(directory) / schema.split_file(split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing split file; run construct_graph.py")
    if path.stat().st_size == 0:
        return [], {
            schema.CELL: torch.zeros(0, 3, 3),
            schema.CUTOFF: torch.zeros(0),
            schema.FRAME: torch.zeros(0, dtype=torch.int64),
        }
    graphs, labels = dgl.load_graphs(str(path))
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
) -> dict:
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

    Normalisation mean/std come from the train split only, over masked particles.
    """
    from glassgnn.fileio import atomic_directory, sha256, write_json

    params = check_params(params)
    if not splits.get("train"):
        raise ValueError("the train split has no input file")
    if val_fraction and splits.get("val"):
        raise ValueError("give either --val files or --val_fraction, not both")
    with atomic_directory(output_dir, overwrite=overwrite) as tmp:
        built = {
            split: _run(splits.get(split, []), params, num_workers, progress, desc=split)
            for split in schema.SPLITS
        }
        if val_fraction:
            built["train"], built["val"] = _split_fraction(built["train"], val_fraction, seed)
        everything = [record for items in built.values() for _, record in items]
        for key in ("target", "target_names", "extra_fields", "mask_types"):
            _check_consistent(everything, key)
        type_map = union_type_map(everything)
        _check_labels(params, type_map)
        first = everything[0]
        target_names = first["target_names"]
        train_targets = _masked_targets([g for g, _ in built["train"]], len(target_names))
        if target_names and len(train_targets) == 0:
            raise ValueError("no masked particle in the train split: check --mask_types")
        std = train_targets.std(axis=0) if len(target_names) else np.zeros(0)
        manifest = {
            "type_map": type_map,
            "num_types": len(type_map),
            "target_names": target_names,
            "normalisation": {
                "mean": train_targets.mean(axis=0).tolist() if len(target_names) else [],
                # A constant target would divide by zero: its scale is left at 1.
                "std": np.where(std > 0, std, 1.0).tolist(),
            },
            "extra_fields": first["extra_fields"],
            "units": first["units"],
            "graph": {**params, "target": first["target"], "mask_types": first["mask_types"]},
            "splits": {},
            "inputs": [],
            "versions": _versions(),
        }
        for split in schema.SPLITS:
            graphs = [graph for graph, _ in built[split]]
            records = [record for _, record in built[split]]
            for graph, record in built[split]:
                _apply_type_map(graph, record, type_map)
            _save_split(tmp / schema.split_file(split), graphs, records, params)
            keep = ("source", "frame", "num_nodes", "num_edges", "isolated", "wrapped")
            manifest["splits"][split] = {
                "graphs": [{key: record[key] for key in keep} for record in records],
                "target_stats": _column_stats(_masked_targets(graphs, len(target_names)), target_names),
            }
        sources = dict.fromkeys(record["source"] for record in everything)
        manifest["inputs"] = [{"path": os.path.abspath(path), "sha256": sha256(path)} for path in sources]
        write_json(tmp / schema.MANIFEST, manifest)
    return manifest


def _save_split(path: Path, graphs: list[dgl.DGLGraph], records: list[dict], params: dict) -> None:
    if not graphs:
        path.write_bytes(b"")  # DGL cannot save an empty list; load_split reads this as []
        return
    cutoff = 0.0 if params["knn"] else params["cutoff"] or 0.0  # schema: 0 marks k-NN graphs
    if params["pair_cutoffs"]:
        cutoff = max([cutoff, *params["pair_cutoffs"].values()])
    labels = {
        schema.CELL: torch.tensor(np.stack([record["cell"] for record in records]), dtype=torch.float32),
        schema.CUTOFF: torch.full((len(graphs),), float(cutoff), dtype=torch.float32),
        schema.FRAME: torch.tensor([record["frame"] for record in records], dtype=torch.int64),
    }
    dgl.save_graphs(str(path), graphs, labels)
