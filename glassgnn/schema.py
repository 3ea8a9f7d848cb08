"""The graph schema: the one place that names the keys of a particle graph.

Every graph this project builds, saves, trains on or explains follows it.
Nothing else in the code base spells a raw key string; import these constants.

Edges point from a *sender* (``src``) to a *receiver* (``dst``); both
directions of every neighbour pair are present. Message passing therefore
aggregates over incoming edges at the receiver.

Node data (``graph.ndata``)
    ``TYPE``  int64  [n_atoms]        particle type mapped to 0..T-1 (mapping in the manifest)
    ``POS``   float32 [n_atoms, 3]    position wrapped into the cell (length units of the input)
    ``TARGET`` float32 [n_atoms, k]   per-particle targets (k columns, names in the manifest)
    ``MASK``  bool   [n_atoms]        particles that enter the loss and the metrics
    ``EXTRA_PREFIX + name`` float32 [n_atoms] or [n_atoms, m]  optional extra per-atom fields
    ``EXTRA_PREFIX + DESCRIPTORS`` float32 [n_atoms, d]  structural descriptors
                                         (``construct_graph.py --descriptors``; parameters,
                                         column names and train statistics in the manifest)

Edge data (``graph.edata``)
    ``DISP``  float32 [n_edges, 3]    r_dst - r_src under the minimum-image convention
    ``DIST``  float32 [n_edges, 1]    |DISP|

Per-graph labels (the ``labels`` dict of ``dgl.save_graphs``, one row per graph)
    ``CELL``   float32 [n_graphs, 3, 3]  cell vectors as rows (orthorhombic: diagonal)
    ``CUTOFF`` float32 [n_graphs]        neighbour cutoff used (0 for k-NN graphs)
    ``FRAME``  int64   [n_graphs]        frame index inside the source file
    ``GRAPH_TARGET`` float32 [n_graphs, k]  per-snapshot targets (temperature, energy, ...),
                                         only in datasets built with ``--graph_target``;
                                         column names in the manifest's ``graph_target_names``
The source file of each graph is listed in the manifest, in graph order.
"""

TYPE = "type"  # (n_atoms,) int64
POS = "pos"  # (n_atoms, 3) float32, wrapped into the cell
TARGET = "y"  # (n_atoms, k) float32
MASK = "mask"  # (n_atoms,) bool
EXTRA_PREFIX = "x_"  # extra per-atom fields: ndata["x_pot"], ...
DESCRIPTORS = "descriptors"  # extra field name: ndata["x_descriptors"], (n_atoms, d) float32

DISP = "disp"  # (n_edges, 3) float32, r_dst - r_src, minimum image
DIST = "dist"  # (n_edges, 1) float32

CELL = "cell"  # (n_graphs, 3, 3) float32 label
CUTOFF = "cutoff"  # (n_graphs,) float32 label
FRAME = "frame"  # (n_graphs,) int64 label
GRAPH_TARGET = "graph_y"  # (n_graphs, k) float32 label: per-snapshot targets

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"


def split_file(split: str) -> str:
    """File name of a split inside a dataset directory (``train.bin`` ...)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return f"{split}.bin"
