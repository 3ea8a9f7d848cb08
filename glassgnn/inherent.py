"""Inherent structures: the local energy minimum a configuration quenches to (DGL-free).

The inherent structure (Stillinger and Weber, Phys. Rev. A 25, 978, 1982) of a supercooled
liquid snapshot is the configuration reached by steepest descent of its potential energy.
The distance of each particle to its inherent-structure position and its energy there are
known static indicators of where the dynamics will be fast: the displacement measures how
far a particle sits from its cage's minimum (a local Debye-Waller-like amplitude), the
energy how deep that minimum is. Jung, Biroli and Berthier (GlassMLP, PRL 130, 238202,
2023) feed inherent-structure descriptors to their network for this reason.

Minimisation is LAMMPS's conjugate gradient (``min_style cg``) on the pair potential the
data were simulated with, through :mod:`glassgnn.lammps_driver`; only the Kob-Andersen
mixture (:data:`POTENTIALS`) is known here. The CuZr barrier data need an EAM potential
that is not part of this project, and those snapshots are quenched glasses already.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glassgnn.lammps_driver import KA_DENSITY, KASystem
from glassgnn.neighbors import cell_matrix

POTENTIALS = ("kob_andersen",)
# LAMMPS "minimize etol ftol maxiter maxeval": stop when the force vector's 2-norm falls
# below FORCE_TOLERANCE (energy tolerance 0 disables the energy criterion).
FORCE_TOLERANCE = 1e-8
MAX_ITERATIONS = 100_000
DENSITY_TOLERANCE = 0.1  # relative: DeepMind's files are at 1.203, ours at 1.200


@dataclass(frozen=True)
class InherentStructure:
    """The minimum a snapshot quenches to, per particle in the input's order.

    Attributes:
        positions: [n_atoms, 3] float64 positions at the minimum, unwrapped so that
            ``positions - input positions`` (wrapped into the cell) is each particle's path.
        displacement: [n_atoms] float64 distance from the input position to the minimum.
        energy: [n_atoms] float64 potential energy per particle at the minimum (pair
            energies split equally, LAMMPS ``pe/atom``), in the potential's energy unit.
    """

    positions: np.ndarray
    displacement: np.ndarray
    energy: np.ndarray


def inherent_structure(
    positions: np.ndarray, types: np.ndarray, cell: np.ndarray, potential: str = "kob_andersen"
) -> InherentStructure:
    """Minimise the potential energy of one periodic snapshot from its positions.

    Args:
        positions: [n_atoms, 3] positions (any image), in the potential's length unit
            (sigma_AA for Kob-Andersen).
        types: [n_atoms] types 0 (A) and 1 (B).
        cell: (3,) or (3, 3) cubic cell.
        potential: a name of :data:`POTENTIALS`.

    Returns:
        the :class:`InherentStructure`; a ValueError when the potential, the types or the
        cell do not fit, and a :class:`glassgnn.lammps_driver.LammpsError` when LAMMPS fails.
    """
    if potential not in POTENTIALS:
        raise ValueError(f"unknown potential {potential!r} for inherent structures; known: {POTENTIALS}")
    matrix = cell_matrix(cell)
    length = float(matrix[0, 0])
    if not np.allclose(matrix, np.eye(3) * length, rtol=0, atol=1e-9 * length):
        raise ValueError(f"inherent structures need a cubic cell, got {matrix.tolist()}")
    types = np.asarray(types)
    if types.size and (types.min() < 0 or types.max() > 1):
        raise ValueError(f"the Kob-Andersen mixture has types 0 and 1, got {sorted(set(types.tolist()))}")
    density = len(positions) / length**3
    if abs(density / KA_DENSITY - 1) > DENSITY_TOLERANCE:
        # the potential is in sigma_AA units: another density means other units or another system
        raise ValueError(
            f"the Kob-Andersen potential is defined at number density {KA_DENSITY} (sigma_AA units); "
            f"this snapshot has {density:.4g}"
        )
    start = np.mod(np.asarray(positions, dtype=np.float64), length)
    with KASystem(len(start), threads=1, dt=0.005, positions=start, types=types, length=length) as system:
        system.command(
            [
                "compute energy all pe/atom",
                "min_style cg",
                f"minimize 0.0 {FORCE_TOLERANCE!r} {MAX_ITERATIONS} {10 * MAX_ITERATIONS}",
                "run 0",  # evaluates pe/atom at the minimum
            ]
        )
        minimum = system.unwrapped_positions()
        energy = np.ctypeslib.as_array(system.lmp.gather("c_energy", 1, 1)).astype(np.float64)
    return InherentStructure(minimum, np.linalg.norm(minimum - start, axis=1), energy)
