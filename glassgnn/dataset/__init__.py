"""Dataset directories: build graphs from files, write and load ``DIR/{train,val,test}.bin``.

A dataset directory (written by ``construct_graph.py``) holds one ``dgl.save_graphs``
file per split (an empty split is an empty file) with the per-graph labels of
:mod:`glassgnn.schema`, and ``manifest.json`` (inputs with sha256, the graph
parameters, the type mapping, target names, normalisation from the train split,
per-graph counts, package versions). ``build_graphs(paths, manifest.graph,
type_map=manifest.type_map)`` rebuilds graphs exactly as the dataset did
(``build_graphs_and_labels`` also gives the per-graph labels, e.g. the per-snapshot
targets of a ``"task": "graph"`` dataset).
"""

from glassgnn.dataset.build import (
    DEFAULT_PARAMS,
    build_graphs,
    build_graphs_and_labels,
    check_params,
    expand_globs,
    union_type_map,
)
from glassgnn.dataset.store import (
    construct_dataset,
    load_graph_targets,
    load_manifest,
    load_split,
    load_split_labels,
)

__all__ = [
    "DEFAULT_PARAMS",
    "build_graphs",
    "build_graphs_and_labels",
    "check_params",
    "construct_dataset",
    "expand_globs",
    "load_graph_targets",
    "load_manifest",
    "load_split",
    "load_split_labels",
    "union_type_map",
]
