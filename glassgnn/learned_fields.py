"""Atomic-level fields learned from the geometry: the fit behind ``learned_fields`` (DGL-free).

The per-atom potential energy and pressure of a metallic glass are classic structural
indicators (Egami), and the CuZr files carry them, but reading them from a snapshot is more
input than its positions: new files need not carry them, and a validation snapshot's own
energies are not part of the SymGNN protocol. So the descriptor set can learn them instead,
from the training snapshots only, and then compute them from positions.

Each learned field is, per species of the centre particle, a linear function of its
species-resolved densities in fine Gaussian shells (:func:`glassgnn.descriptors.fine_basis`):
``f_i = b_{t_i} + sum_{s,k} w_{t_i,s,k} G_i^s(r_k)``. That is exactly the pair part of an
embedded-atom (EAM) energy, ``sum_j phi_{t_i t_j}(r_ij)``, with phi sampled on the fine grid,
and its embedding part to first order in the density. On CuZr (train0-5 -> train6, 0.05 Å
shells) it reproduces the files' ``pot`` with Pearson 0.9988 (Cu) and 0.9995 (Zr) within each
species, ``press`` with 0.999 and 0.998; the von Mises stress, an angular quantity, only 0.46.
A linear fit of ``pot`` on the default descriptors instead (0.2 Å shells, no species of the
centre in the pair terms) reaches 0.92 for Cu, and only the finer map lifts the ridge floor
of the barriers (docs/accuracy.md).

Fit: ridge per centre type on the centred basis, strength :data:`RIDGE` times the mean
diagonal of its Gram matrix (scale-free; shells no pair reaches get weight 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from glassgnn.descriptors import DescriptorParams, checked_cutoff, fine_basis
from glassgnn.local_structure import snapshot_pairs
from glassgnn.neighbors import cell_matrix

RIDGE = 1e-4


@dataclass(frozen=True)
class FieldSnapshot:
    """One training snapshot of the fit.

    Attributes:
        positions: [n_atoms, 3] positions.
        types: [n_atoms] integer types in the dataset's type map.
        cell: (3,) box lengths or (3, 3) cell vectors as rows.
        fields: name -> [n_atoms] values of the fields to learn.
        source: the file it came from (for error messages).
    """

    positions: np.ndarray
    types: np.ndarray
    cell: np.ndarray
    fields: dict[str, np.ndarray]
    source: str = ""


def fit_learned_fields(
    snapshots: Sequence[FieldSnapshot], num_types: int, params: DescriptorParams
) -> DescriptorParams:
    """``params`` with ``learned_weights`` fitted on ``snapshots`` (the training split).

    Raises:
        ValueError: a snapshot lacks a field (naming its source), or a type of
            ``0..num_types-1`` has no particle to fit on.
    """
    bases, types, values = [], [], {name: [] for name in params.learned_fields}
    for snapshot in snapshots:
        missing = [name for name in params.learned_fields if name not in snapshot.fields]
        if missing:
            raise ValueError(
                f"{snapshot.source}: no field(s) {missing} to learn (has: {sorted(snapshot.fields)})"
            )
        cell = cell_matrix(snapshot.cell)
        pairs = snapshot_pairs(snapshot.positions, cell, checked_cutoff(params, cell))
        bases.append(fine_basis(pairs, np.asarray(snapshot.types, dtype=np.int64), num_types, params))
        types.append(np.asarray(snapshot.types))
        for name in params.learned_fields:
            values[name].append(np.asarray(snapshot.fields[name], dtype=np.float64).reshape(-1))
    basis, types = np.concatenate(bases), np.concatenate(types)
    weights = []
    for name in params.learned_fields:
        field = np.concatenate(values[name])
        weights.append([_ridge(basis[types == t], field[types == t], t) for t in range(num_types)])
    return dataclasses.replace(params, learned_weights=weights)


def _ridge(basis: np.ndarray, target: np.ndarray, centre_type: int) -> tuple[float, ...]:
    """``(intercept, *weights)`` of the ridge fit of [n] ``target`` on [n, k] ``basis``."""
    if len(target) == 0:
        raise ValueError(f"no training particle of type index {centre_type} to learn the fields on")
    if not np.all(np.isfinite(target)):
        raise ValueError("a field to learn holds a non-finite value")
    mean = basis.mean(axis=0)
    centred = basis - mean
    gram = centred.T @ centred
    strength = RIDGE * max(np.trace(gram) / len(gram), np.finfo(float).tiny)
    weights = np.linalg.solve(gram + strength * np.eye(len(gram)), centred.T @ (target - target.mean()))
    return (float(target.mean() - mean @ weights), *map(float, weights))
