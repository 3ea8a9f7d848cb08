"""Graphs from input files: graph parameters, one graph per frame, one type map per dataset."""

from __future__ import annotations

import glob
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import dgl
import numpy as np
import torch
from tqdm import tqdm

from glassgnn import schema
from glassgnn.descriptors import DescriptorParams, compute_descriptors
from glassgnn.graph import build_graph
from glassgnn.lammps_driver import LammpsError
from glassgnn.learned_fields import FieldSnapshot, fit_learned_fields
from glassgnn.neighbors import perpendicular_widths, wrap
from glassgnn.readers import (
    FORMATS,
    ReaderError,
    Snapshot,
    apply_value_table,
    graph_values,
    read_snapshots,
    read_value_table,
)
from glassgnn.readers.base import label_sort_key

log = logging.getLogger(__name__)

#: Graph parameters and their defaults; ``Manifest.graph`` stores all of them.
DEFAULT_PARAMS = {
    "format": "auto",
    "cutoff": None,  # Å or LJ sigma; required unless knn is given
    "knn": None,
    "pair_cutoffs": None,  # {"1-2": 3.4}: cutoff per pair of original type labels
    "self_loops": False,
    "target": None,  # field name; None: the reader's default (may be no target)
    "time_index": None,  # bapst: one propensity time index; None: all
    "mask_types": None,  # type labels in loss and metrics, or "all"; None: the reader's default
    "graph_target": None,  # [names] of per-snapshot values stored as graph labels; None: none
    "graph_target_csv": None,  # side table of per-snapshot values (glassgnn.readers.graph_values)
    # Structural descriptors stored as ndata["x_descriptors"]: every parameter of
    # glassgnn.descriptors.DescriptorParams (as its to_dict), or None for none.
    "descriptors": None,
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
    names = params["graph_target"]
    if names is not None:
        if isinstance(names, str) or not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"graph_target must be a non-empty list of names, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"graph_target names repeat: {names}")
        params["graph_target"] = list(names)
    if params["graph_target_csv"] is not None:
        params["graph_target_csv"] = os.path.abspath(params["graph_target_csv"])
    if params["descriptors"] is not None:
        params["descriptors"] = DescriptorParams.from_dict(params["descriptors"]).to_dict()
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
    """Graph of one snapshot (types still in the snapshot's own mapping) and its record.

    The record's ``"graph_target"`` is the [k] float64 row of per-snapshot targets, or
    None without ``params["graph_target"]``; a missing or non-numeric value is an error
    with ``require_target``, a row of NaN otherwise (prediction on new files).
    """
    target = params["target"] or snapshot.default_target
    if params["target"] and params["target"] not in snapshot.fields and require_target:
        raise ReaderError(
            snapshot.source, f"no field {target!r} to use as target (has: {sorted(snapshot.fields)})"
        )
    has_target = target is not None and target in snapshot.fields
    mask_labels, mask = _loss_mask(snapshot, params)
    # training labels of the learned descriptor fields, not node inputs (validation files lack them)
    learned = (params["descriptors"] or {}).get("learned_fields", [])
    inputs = {k: v for k, v in snapshot.fields.items() if k != target and k not in learned}
    descriptor_inputs = _descriptor_inputs(snapshot, params, target, inputs)  # checked before the search
    try:
        graph = build_graph(
            snapshot.positions,
            snapshot.types,
            snapshot.cell,
            params["cutoff"],
            targets=snapshot.fields[target] if has_target else np.zeros((snapshot.num_atoms, 0)),
            mask=mask,
            self_loops=params["self_loops"],
            knn=params["knn"],
            pair_cutoffs=_pair_matrix(snapshot, params),
            extra_fields=inputs,
        )
    except ReaderError:
        raise
    except ValueError as exc:  # the neighbour search refuses the cell or the positions
        raise ReaderError(snapshot.source, f"frame {snapshot.frame}: {exc}") from None
    isolated, wrapped = _report_geometry(snapshot, params, graph)
    record = {
        "source": snapshot.source,
        "frame": snapshot.frame,
        "num_nodes": snapshot.num_atoms,
        "num_edges": graph.num_edges(),
        "isolated": isolated,
        "wrapped": wrapped,
        "type_labels": snapshot.type_labels,
        "target_names": snapshot.target_columns(target) if has_target else [],
        "mask_types": mask_labels,
        "target": target if has_target else None,
        "extra_fields": {k: (int(v.shape[1]) if v.ndim == 2 else 1) for k, v in inputs.items()},
        "cell": snapshot.cell,
        "units": snapshot.units,
        "graph_target": _graph_target_row(snapshot, params["graph_target"], require_target),
        **descriptor_inputs,
    }
    return graph, record


def _loss_mask(snapshot: Snapshot, params: dict) -> tuple[str | list[str], np.ndarray | None]:
    """The type labels in loss and metrics ("all" or a list) and the [n_atoms] bool mask, or None."""
    labels = params["mask_types"] if params["mask_types"] is not None else snapshot.default_mask_labels
    if labels in (None, "all"):
        return "all", None
    labels = [str(label) for label in labels]
    return labels, np.isin(np.asarray(snapshot.type_labels)[snapshot.types], labels)


def _descriptor_inputs(snapshot: Snapshot, params: dict, target: str | None, inputs: dict) -> dict:
    """What the descriptors need from this snapshot, kept in its record until the dataset's type
    map is known (:func:`finish_graphs`: descriptors are per species); {} without descriptors.
    Raises ReaderError when a field they name is missing or is the target."""
    descriptors = params["descriptors"]
    if descriptors is None:
        return {}
    if schema.DESCRIPTORS in inputs:
        raise ReaderError(snapshot.source, f"has a field named {schema.DESCRIPTORS!r}; rename it")
    names, learned = descriptors.get("fields", []), descriptors.get("learned_fields", [])
    if target in [*names, *learned]:
        raise ReaderError(snapshot.source, f"the target {target!r} cannot be a descriptor field")
    missing = [name for name in names if name not in snapshot.fields]
    if missing:
        raise ReaderError(
            snapshot.source, f"no field(s) {missing} for the descriptors (has: {sorted(snapshot.fields)})"
        )
    return {
        "positions": np.asarray(snapshot.positions, dtype=np.float64),
        "descriptor_fields": {name: snapshot.fields[name] for name in names},
        # only the training split's files need them (fit_learned_descriptors)
        "learned_fields": {name: snapshot.fields[name] for name in learned if name in snapshot.fields},
    }


def _report_geometry(snapshot: Snapshot, params: dict, graph: dgl.DGLGraph) -> tuple[int, int]:
    """Warn about a cutoff beyond half the cell and isolated atoms; returns the number of
    isolated atoms and of atoms wrapped into the cell."""
    reach = max([params["cutoff"] or 0.0, *(params["pair_cutoffs"] or {}).values()])
    widths = perpendicular_widths(snapshot.cell)
    if reach >= widths.min() / 2:
        log.warning(
            "%s frame %d: cutoff %g reaches beyond half the cell (widths %s): every periodic image "
            "within it is an edge, so a pair can be connected several times",
            snapshot.source,
            snapshot.frame,
            reach,
            np.round(widths, 4).tolist(),
        )
    isolated = int((graph.in_degrees() - int(params["self_loops"]) == 0).sum())
    if isolated:
        log.warning("%s frame %d: %d atoms have no neighbour", snapshot.source, snapshot.frame, isolated)
    wrapped = wrap(snapshot.positions, snapshot.cell)[1]
    if wrapped:
        log.info(
            "%s frame %d: %d atoms outside the cell wrapped in", snapshot.source, snapshot.frame, wrapped
        )
    return isolated, wrapped


def _graph_target_row(snapshot: Snapshot, names: list[str] | None, require: bool) -> np.ndarray | None:
    if not names:
        return None
    try:
        return graph_values(snapshot, names)
    except ReaderError:
        if require:
            raise
        return np.full(len(names), np.nan)


def _process_file(path: str, params: dict, require_target: bool = True) -> list[tuple[dgl.DGLGraph, dict]]:
    snapshots = read_snapshots(path, params["format"], time_index=params["time_index"])
    table_path = params["graph_target_csv"]
    if params["graph_target"] and table_path and (require_target or os.path.isfile(table_path)):
        table = read_value_table(table_path)  # small; re-read per file so workers need no shared state
        for snapshot in snapshots:
            apply_value_table(snapshot, table)
    return [_snapshot_graph(snapshot, params, require_target) for snapshot in snapshots]


def build_records(
    paths: list[str],
    params: dict,
    num_workers: int = 1,
    progress: bool = False,
    require_target: bool = True,
    desc: str = "graphs",
) -> list[tuple[dgl.DGLGraph, dict]]:
    """Graph and record (source, frame, counts, type labels, ...) of every frame, in input order.

    The graphs' types are still in each file's own mapping: see :func:`apply_type_map`.
    Files are read in ``num_workers`` processes, with a tqdm bar named ``desc``.
    """
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


def apply_type_map(graph: dgl.DGLGraph, record: dict, type_map: dict[str, int]) -> None:
    """Re-index ``ndata["type"]`` from the file's own labels to the dataset's ``type_map``."""
    unknown = [label for label in record["type_labels"] if label not in type_map]
    if unknown:
        raise ReaderError(
            record["source"], f"type(s) {unknown} not in the dataset's type map {sorted(type_map)}"
        )
    graph.ndata[schema.TYPE] = torch.from_numpy(_dataset_types(graph, record, type_map))


def _dataset_types(graph: dgl.DGLGraph, record: dict, type_map: dict[str, int]) -> np.ndarray:
    """[n_atoms] int64 types of a graph still in its file's labels, in ``type_map``'s indices."""
    lookup = np.array([type_map[label] for label in record["type_labels"]], dtype=np.int64)
    return lookup[graph.ndata[schema.TYPE].numpy()]


def fit_learned_descriptors(
    train: list[tuple[dgl.DGLGraph, dict]], type_map: dict[str, int], params: dict
) -> dict:
    """``params`` with the descriptors' learned fields fitted on the ``train`` graphs and records
    (before :func:`finish_graphs`); unchanged without learned fields or when already fitted."""
    descriptors = DescriptorParams.from_dict(params["descriptors"]) if params["descriptors"] else None
    if descriptors is None or not descriptors.learned_fields or descriptors.learned_weights:
        return params
    snapshots = [
        FieldSnapshot(
            record["positions"],
            _dataset_types(graph, record, type_map),
            record["cell"],
            record["learned_fields"],
            f"{record['source']} frame {record['frame']}",
        )
        for graph, record in train
    ]
    fitted = fit_learned_fields(snapshots, len(type_map), descriptors)  # errors name the file
    return {**params, "descriptors": fitted.to_dict()}


def finish_graphs(results: list[tuple[dgl.DGLGraph, dict]], type_map: dict[str, int], params: dict) -> None:
    """Put built graphs in the dataset's type map and attach their descriptors, in place.

    Species-resolved descriptors need the dataset's type indices, so they are computed
    here, after :func:`apply_type_map`, from the float64 positions the record kept
    (which are then dropped); ``params["descriptors"]`` is a DescriptorParams dict or None.
    """
    descriptors = DescriptorParams.from_dict(params["descriptors"]) if params["descriptors"] else None
    for graph, record in results:
        apply_type_map(graph, record, type_map)
        positions = record.pop("positions", None)
        fields = record.pop("descriptor_fields", {})
        record.pop("learned_fields", None)
        if descriptors is None:
            continue
        types = graph.ndata[schema.TYPE].numpy()
        try:
            values = compute_descriptors(positions, types, record["cell"], len(type_map), descriptors, fields)
        except (ValueError, LammpsError) as exc:  # e.g. the inherent structure's potential does not fit
            raise ReaderError(record["source"], f"frame {record['frame']}: descriptors: {exc}") from None
        graph.ndata[schema.EXTRA_PREFIX + schema.DESCRIPTORS] = torch.from_numpy(values.astype(np.float32))
        record["extra_fields"] = {**record["extra_fields"], schema.DESCRIPTORS: int(values.shape[1])}


def build_graphs(
    paths: list[str],
    graph_params: dict,
    type_map: dict[str, int] | None = None,
    num_workers: int = 1,
    progress: bool = False,
    require_target: bool = False,
) -> list[dgl.DGLGraph]:
    """Graphs of every frame of every file, built with a dataset's parameters.

    :func:`build_graphs_and_labels` also returns the per-graph labels (cell, frame,
    per-snapshot targets). Arguments:

    Args:
        paths: input files.
        graph_params: ``Manifest.graph`` (see :data:`DEFAULT_PARAMS`).
        type_map: ``Manifest.type_map``; None derives one from the files.
        num_workers: processes reading files in parallel.
        progress: show a tqdm bar over files.
        require_target: fail when a file lacks the target field; otherwise such a
            graph gets ``ndata["y"]`` of shape [n_atoms, 0] (prediction on new data).
    """
    return build_graphs_and_labels(paths, graph_params, type_map, num_workers, progress, require_target)[0]


def build_graphs_and_labels(
    paths: list[str],
    graph_params: dict,
    type_map: dict[str, int] | None = None,
    num_workers: int = 1,
    progress: bool = False,
    require_target: bool = False,
) -> tuple[list[dgl.DGLGraph], dict[str, torch.Tensor]]:
    """:func:`build_graphs` plus the per-graph labels a dataset split stores.

    Returns:
        The graphs and ``{schema.CELL: [G, 3, 3], schema.CUTOFF: [G], schema.FRAME: [G]}``
        plus, when ``graph_params["graph_target"]`` names per-snapshot targets,
        ``schema.GRAPH_TARGET``: [G, k] float32 in original units (rows of NaN for
        frames without them when ``require_target`` is False).
    """
    params = check_params(graph_params)
    results = build_records([str(p) for p in paths], params, num_workers, progress, require_target)
    records = [record for _, record in results]
    type_map = type_map or union_type_map(records)
    finish_graphs(results, type_map, params)
    return [graph for graph, _ in results], graph_labels(records, params)


def graph_labels(records: list[dict], params: dict) -> dict[str, torch.Tensor]:
    """Per-graph labels of :mod:`glassgnn.schema` (CELL, CUTOFF, FRAME, GRAPH_TARGET) from records."""
    cutoff = 0.0 if params["knn"] else params["cutoff"] or 0.0  # schema: 0 marks k-NN graphs
    if params["pair_cutoffs"]:
        cutoff = max([cutoff, *params["pair_cutoffs"].values()])
    labels = {
        schema.CELL: torch.tensor(
            np.array([r["cell"] for r in records]).reshape(-1, 3, 3), dtype=torch.float32
        ),
        schema.CUTOFF: torch.full((len(records),), float(cutoff), dtype=torch.float32),
        schema.FRAME: torch.tensor([record["frame"] for record in records], dtype=torch.int64),
    }
    if params["graph_target"]:
        rows = np.array([record["graph_target"] for record in records]).reshape(
            -1, len(params["graph_target"])
        )
        labels[schema.GRAPH_TARGET] = torch.tensor(rows, dtype=torch.float32)
    return labels


def expand_globs(patterns: list[str], flag: str) -> list[str]:
    """Files matching any of ``patterns`` (sorted, duplicates removed); error when one matches none."""
    paths = []
    for pattern in patterns:
        matched = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not matched:
            raise FileNotFoundError(f"{pattern}: no input matched {flag}")
        paths.extend(m for m in matched if m not in paths)
    return paths
