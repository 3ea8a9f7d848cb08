"""Helpers for the model-zoo tests: small periodic graphs, geometry transforms, small configs."""

from __future__ import annotations

import dgl
import numpy as np
import torch

from glassgnn import schema
from glassgnn.graph import build_graph
from models.models import build_model, model_config_keys

CUTOFF = 3.2  # Å; the lattice spacing 2.2 Å gives about 18 neighbours per particle

# Small hyperparameters so that the whole parametrised suite stays fast; models
# not listed (written elsewhere) run with their defaults.
SMALL = {
    "mlp": {"hidden_dims": [8]},
    "gcn": {"hidden_dim": 8, "num_layers": 2},
    "gcn_edge": {"hidden_dim": 8, "num_layers": 2},
    "schnet": {"hidden_dim": 16, "num_filters": 16, "num_interactions": 2, "rbf_gap": 0.4},
    "mpnn": {"hidden_dim": 8, "edge_hidden_dim": 16, "num_steps": 2, "rbf_gap": 0.4},
    "mgcn": {"hidden_dim": 16, "num_layers": 2, "readout_dim": 16, "rbf_gap": 0.4},
    "symgnn": {"hidden_dim": 8, "heads": [2, 1]},
    "egnn": {"hidden_dim": 16, "num_layers": 2},
    "bapst": {"latent_dim": 16, "mlp_hidden": [16], "decoder_hidden": [16], "num_steps": 2},
    "cgcnn": {"atom_fea_len": 16, "n_conv": 2, "h_fea_len": 16},
    "se3": {"mul": 4, "num_layers": 2, "radial_hidden": 8, "avg_num_neighbors": 18.0},
}


def small_model(name: str, in_dim: int, out_dim: int = 2, **overrides) -> torch.nn.Module:
    """Model ``name`` with small hyperparameters and its cutoff set to the test graphs' cutoff."""
    config = {"in_dim": in_dim, "out_dim": out_dim, **SMALL.get(name, {}), **overrides}
    if "cutoff" in model_config_keys(name):
        config.setdefault("cutoff", CUTOFF)
    return build_model(name, config)


def lattice_configuration(
    n_side: tuple[int, int, int], seed: int, spacing: float = 2.2, jitter: float = 0.35
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Jittered simple-cubic configuration: positions [n, 3], types [n] in {0, 1}, box (3,) in Å.

    The lattice guarantees every particle neighbours within ``CUTOFF`` (some
    layers refuse isolated particles); the jitter breaks every symmetry.
    """
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(k) for k in n_side], indexing="ij"), -1).reshape(-1, 3)
    positions = (grid + 0.5) * spacing + rng.uniform(-jitter, jitter, grid.shape)
    types = rng.integers(0, 2, len(grid))
    return positions, types, np.array(n_side, dtype=float) * spacing


def graph_and_feat(
    positions: np.ndarray, types: np.ndarray, box: np.ndarray, extra: np.ndarray
) -> tuple[dgl.DGLGraph, torch.Tensor]:
    """Radius graph at ``CUTOFF`` and node input [n, 3]: one-hot type plus one continuous field."""
    graph = build_graph(positions, types, box, CUTOFF)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(types), 2).float()
    return graph, torch.cat([onehot, torch.as_tensor(extra, dtype=torch.float32).reshape(-1, 1)], 1)


def synthetic(n_side=(3, 3, 3), seed: int = 0) -> tuple[dgl.DGLGraph, torch.Tensor]:
    positions, types, box = lattice_configuration(n_side, seed)
    extra = np.random.default_rng(seed + 100).standard_normal(len(types))
    return graph_and_feat(positions, types, box, extra)


def with_geometry(graph: dgl.DGLGraph, disp: torch.Tensor) -> dgl.DGLGraph:
    """Copy of ``graph`` (same edges and node data) whose displacements are ``disp`` (dtype kept)."""
    src, dst = graph.edges()
    out = dgl.graph((src, dst), num_nodes=graph.num_nodes())
    for key, value in graph.ndata.items():
        out.ndata[key] = value
    out.edata[schema.DISP] = disp
    out.edata[schema.DIST] = disp.norm(dim=1, keepdim=True)
    return out


def random_rotation(seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """[3, 3] rotation (det +1) from the QR decomposition of a Gaussian matrix."""
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)
