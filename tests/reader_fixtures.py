"""Small input files in every supported format, written by the tests themselves."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

TRICLINIC = np.array([[9.0, 0.0, 0.0], [2.5, 8.0, 0.0], [-1.5, 1.0, 7.0]])
ORIGIN = np.array([-3.0, 1.0, 0.5])


def configuration(seed: int, n_atoms: int = 40, cell: np.ndarray = TRICLINIC):
    """Positions relative to the origin inside ``cell``, types 1/2 and a per-atom value."""
    rng = np.random.default_rng(seed)
    frac = rng.uniform(0, 1, size=(n_atoms, 3))
    return frac @ cell, rng.integers(1, 3, size=n_atoms), rng.normal(size=n_atoms)


def write_symgnn(path: Path, n_atoms: int = 30, seed: int = 0, **overrides) -> dict:
    box = np.array([9.0, 8.0, 7.5], dtype=np.float32)
    rng = np.random.default_rng(seed)
    data = {
        "positions": rng.uniform(-0.5, 0.5, size=(n_atoms, 3)) * box,
        "types": rng.integers(1, 3, size=n_atoms).astype(np.int32),
        "box": box,
        "trajectory_start_velocities": rng.uniform(0.8, 2.8, size=n_atoms).astype(np.float32),
        "pot": rng.normal(-4, 0.3, size=n_atoms).astype(np.float32),
        "press": rng.normal(size=n_atoms).astype(np.float32),
        "von": rng.normal(size=n_atoms).astype(np.float32),
        "pos": np.arange(n_atoms, dtype=np.uint16)[:, None],
    }
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    path.write_bytes(pickle.dumps(data))
    return data


def write_bapst(path: Path, with_targets_key: bool = False) -> dict:
    """Two particles with three trajectories whose propensities are [7/3, 1] at time 0
    (the DeepMind repository's own test) and [2, 2] at time 1."""
    initial = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    t0 = np.array([[[1, 0, 0], [1, 2, 4]], [[0, 1, 0], [1, 0, 3]], [[0, 0, 5], [1, 2, 3]]], dtype=np.float64)
    t1 = initial[None] + np.array([[[2.0, 0, 0], [0, 2.0, 0]]] * 3)
    data = {
        "positions": initial,
        "types": np.array([0, 1], dtype=np.int32),
        "box": np.array([10.0, 10.0, 10.0]),
        "time": [0.0, 0.5, 1.5],
        "time_indices": [1, 2],
        "is_values": np.array([0.9, 0.8]),
        "trajectory_start_velocities": [np.zeros((3, 2, 3))],
        "trajectory_target_positions": [t0, t1],
        "metadata": {"temperature": 0.44, "pressure": 2.93, "fluid": "Kob Andersen"},
    }
    if with_targets_key:  # as test_large.pickle: only the first time index, plus averaged targets
        data["trajectory_target_positions"] = [t0]
        data["targets"] = [[7 / 3, 1.0], [2.0, 2.0]]
    path.write_bytes(pickle.dumps(data))
    return data


def _bounds_lines(cell: np.ndarray, origin: np.ndarray) -> list[str]:
    """LAMMPS triclinic 'BOX BOUNDS xy xz yz' lines (bounding box + tilts)."""
    (lx, _, _), (xy, ly, _), (xz, yz, lz) = cell
    xlo, ylo, zlo = origin
    return [
        "ITEM: BOX BOUNDS xy xz yz pp pp pp",
        f"{xlo + min(0, xy, xz, xy + xz)!r} {xlo + lx + max(0, xy, xz, xy + xz)!r} {xy!r}",
        f"{ylo + min(0, yz)!r} {ylo + ly + max(0, yz)!r} {xz!r}",
        f"{zlo!r} {zlo + lz!r} {yz!r}",
    ]


def write_lammps(path: Path, frames: list[tuple], style: str = "x", triclinic: bool = True) -> None:
    """A dump with one frame per (positions, types, values) tuple; atoms written in reverse
    id order; ``style`` in x, xu, xs, xsu; ``values`` as column ``c_propensity``."""
    lines = []
    for step, (positions, types, values) in enumerate(frames):
        cell = TRICLINIC if triclinic else np.diag(np.diag(TRICLINIC))
        lines += ["ITEM: TIMESTEP", str(100 * step), "ITEM: NUMBER OF ATOMS", str(len(positions))]
        if triclinic:
            lines += _bounds_lines(cell, ORIGIN)
        else:
            lines += ["ITEM: BOX BOUNDS pp pp pp"] + [
                f"{o!r} {o + c!r}" for o, c in zip(ORIGIN, np.diag(cell), strict=True)
            ]
        coords = positions @ np.linalg.inv(cell) if style.startswith("xs") else positions + ORIGIN
        names = {"x": "x y z", "xu": "xu yu zu", "xs": "xs ys zs", "xsu": "xsu ysu zsu"}[style]
        lines.append(f"ITEM: ATOMS id type {names} c_propensity")
        for i in reversed(range(len(positions))):
            x, y, z = coords[i]
            lines.append(f"{i + 1} {types[i]} {x!r} {y!r} {z!r} {values[i]!r}")
    path.write_text("\n".join(lines) + "\n")


def write_extxyz(path: Path, frames: list[tuple]) -> None:
    import ase
    import ase.io

    images = []
    for positions, types, values in frames:
        atoms = ase.Atoms(
            symbols=["Cu" if t == 1 else "Zr" for t in types], positions=positions, cell=TRICLINIC, pbc=True
        )
        atoms.arrays["barrier"] = np.asarray(values, dtype=np.float64)
        images.append(atoms)
    ase.io.write(path, images, format="extxyz")


def write_npz(path: Path, positions, types, values, box=TRICLINIC, **extra) -> None:
    np.savez(path, positions=positions, types=types, box=box, targets=values, **extra)
