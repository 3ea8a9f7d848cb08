"""Small synthetic datasets in the layout construct_graph.py writes (for training tests).

Per-particle: :func:`synthetic_splits` (target from type and coordination number).
Per-snapshot: :func:`density_snapshot` (target: the mean number of neighbours within
``NEAR``, a known function of structure that needs distances, not just the graph).
"""

from __future__ import annotations

from pathlib import Path

import dgl
import numpy as np
import torch

from glassgnn import schema
from glassgnn.graph import build_graph
from glassgnn.manifest import Manifest, Normalisation

BOX = 6.0
CUTOFF = 1.6


def synthetic_config(seed: int, n_atoms: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random binary configuration whose target depends on type and coordination number.

    Returns positions [n, 3] in [0, BOX), types [n] in {0, 1}, coordination numbers [n]
    (neighbours within CUTOFF) and target = type + 0.1 * coordination + small noise, so
    an MLP given the coordination (extra field ``x_cn``) can learn the target while one
    given only the type cannot exceed the per-type mean.
    """
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, BOX, (n_atoms, 3))
    types = (rng.uniform(size=n_atoms) < 0.35).astype(np.int64)
    cn = build_graph(positions, types, np.full(3, BOX), CUTOFF).in_degrees().numpy().astype(np.float32)
    target = types + 0.1 * cn + 0.02 * rng.standard_normal(n_atoms)
    return positions, types, cn, target.astype(np.float32)


def synthetic_graph(seed: int, n_atoms: int = 48) -> dgl.DGLGraph:
    """Graph of :func:`synthetic_config` with target ``y`` and extra field ``x_cn``."""
    positions, types, cn, target = synthetic_config(seed, n_atoms)
    graph = build_graph(positions, types, np.full(3, BOX), CUTOFF, targets=target)
    graph.ndata[schema.EXTRA_PREFIX + "cn"] = torch.from_numpy(cn)
    return graph


def synthetic_splits(sizes=(4, 2, 2), n_atoms: int = 48) -> dict[str, list[dgl.DGLGraph]]:
    """Graphs of train, val and test (distinct seeds)."""
    out, seed = {}, 0
    for split, size in zip(schema.SPLITS, sizes, strict=True):
        out[split] = [synthetic_graph(seed + i, n_atoms) for i in range(size)]
        seed += size
    return out


def synthetic_manifest(graphs: dict[str, list[dgl.DGLGraph]]) -> Manifest:
    """Manifest following the contract of glassgnn.dataset (normalisation from train only)."""
    y = torch.cat([g.ndata[schema.TARGET] for g in graphs["train"]])
    return Manifest(
        type_map={"1": 0, "2": 1},
        target_names=["y"],
        normalisation=Normalisation(y.mean(0).tolist(), y.std(0).tolist()),
        extra_fields={"cn": 1},
        graph={"format": "synthetic", "cutoff": CUTOFF, "self_loops": False},
        splits={
            split: {"graphs": [{"source": f"synthetic{i}", "frame": 0} for i in range(len(gs))]}
            for split, gs in graphs.items()
        },
    )


def write_dataset(path: Path, graphs: dict[str, list[dgl.DGLGraph]] | None = None) -> Path:
    """Write a dataset directory (split .bin files with labels, manifest.json)."""
    graphs = graphs or synthetic_splits()
    path.mkdir(parents=True, exist_ok=True)
    for split, gs in graphs.items():
        labels = {
            schema.CELL: torch.diag(torch.full((3,), BOX)).expand(len(gs), 3, 3).clone(),
            schema.CUTOFF: torch.full((len(gs),), CUTOFF),
            schema.FRAME: torch.zeros(len(gs), dtype=torch.int64),
        }
        dgl.save_graphs(str(path / schema.split_file(split)), gs, labels)
    synthetic_manifest(graphs).save(path / schema.MANIFEST)
    return path


DENSITY_BOX = 4.0
DENSITY_CUTOFF = 1.6  # graphs are built at this cutoff ...
NEAR = 1.0  # ... but the target counts neighbours within this distance


def density_snapshot(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Ideal-gas snapshot at a random density; target = mean number of neighbours within NEAR.

    The type fraction varies independently of the density, so types alone say nothing.

    Returns:
        positions [n, 3] in [0, DENSITY_BOX), types [n] in {0, 1}, and the target.
    """
    box = np.full(3, DENSITY_BOX)
    n_atoms = int(rng.uniform(0.3, 1.0) * box.prod())
    types = (rng.random(n_atoms) < rng.uniform(0.3, 0.7)).astype(np.int64)
    positions = rng.uniform(0, DENSITY_BOX, (n_atoms, 3))
    graph = build_graph(positions, types, box, NEAR)
    return positions, types, graph.num_edges() / n_atoms


def synthetic_density_set(rng: np.random.Generator, n_graphs: int) -> tuple[dgl.DGLGraph, torch.Tensor]:
    """``n_graphs`` :func:`density_snapshot` graphs (cutoff DENSITY_CUTOFF), batched, and targets [n, 1]."""
    graphs, targets = [], []
    for _ in range(n_graphs):
        positions, types, target = density_snapshot(rng)
        graphs.append(build_graph(positions, types, np.full(3, DENSITY_BOX), DENSITY_CUTOFF))
        targets.append(target)
    return dgl.batch(graphs), torch.tensor(targets, dtype=torch.float32).unsqueeze(1)


def write_density_files(directory: Path, rng: np.random.Generator, n_files: int, prefix: str) -> list[Path]:
    """:func:`density_snapshot` configurations as npz files with the scalar ``coordination``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_files):
        positions, types, target = density_snapshot(rng)
        path = directory / f"{prefix}{i:03d}.npz"
        np.savez(path, positions=positions, types=types + 1, box=np.full(3, DENSITY_BOX), coordination=target)
        paths.append(path)
    return paths


def write_density_dataset(root: Path, rng: np.random.Generator, sizes: dict[str, int]) -> Path:
    """:func:`write_density_files` per split under ``root/in``, then ``construct_graph.py
    --graph_target coordination`` into ``root/ds`` (returned)."""
    import construct_graph

    args = []
    for split, size in sizes.items():
        write_density_files(root / "in", rng, size, split)
        args += [f"--{split}", str(root / "in" / f"{split}*.npz")]
    out = root / "ds"
    construct_graph.main(
        [*args, "--cutoff", str(DENSITY_CUTOFF), "--graph_target", "coordination", "--output_dir", str(out)]
    )
    return out
