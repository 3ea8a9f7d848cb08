"""Readers for the two pickle formats of the field: SymGNN's and Bapst et al.'s.

* ``symgnn``: Li et al., "Predicting and Interpreting Energy Barriers of Metallic Glasses
  with Graph Neural Networks", ICML 2024 (a MATLAB export of a dict). Positions in Å
  centred on 0 inside [-L/2, L/2); types 1/2 (Cu/Zr); the per-atom energy barrier (eV)
  is stored under ``trajectory_start_velocities`` (the name comes from the Bapst format);
  ``pot``, ``press``, ``von`` are further per-atom fields.
* ``bapst``: Bapst et al., "Unveiling the predictive power of static structure in glassy
  systems", Nature Physics 16, 448 (2020). Absolute (unwrapped) positions in LJ units,
  types 0 = A / 1 = B, propensities from isoconfigurational trajectories.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from glassgnn.readers.base import ReaderError, Snapshot, encode_types, orthorhombic_cell
from glassgnn.readers.safe_pickle import UnsafePickleError, load_data_pickle

SYMGNN_TARGET = "trajectory_start_velocities"
PROPENSITY = "propensity"
# Keys of a SymGNN file that are not per-atom physics: the atom index and MATLAB metadata.
_SYMGNN_SKIP = {"positions", "types", "box", "pos", "__header__", "__version__", "__globals__"}


def load_pickle(path: str | Path) -> dict:
    """Unpickle a dict of plain data (:mod:`glassgnn.readers.safe_pickle`: never runs code).

    A truncated, corrupt or empty file, or one asking for anything but numpy arrays and
    builtin containers, gives a one-line :class:`ReaderError`.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ReaderError(path, "empty file")
    try:
        data = load_data_pickle(path)
    except UnsafePickleError as exc:
        raise ReaderError(path, str(exc)) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise ReaderError(path, f"truncated or corrupt pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ReaderError(path, f"expected a pickled dict, got {type(data).__name__}")
    return data


def _require(path: Path, data: dict, keys: tuple[str, ...], fmt: str) -> None:
    missing = [key for key in keys if key not in data]
    if missing:
        raise ReaderError(path, f"missing key(s) {missing} for the {fmt} format (has: {sorted(data)})")


def _array(path: Path, data: dict, key: str, dtype=np.float64) -> np.ndarray:
    try:
        return np.asarray(data[key], dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ReaderError(path, f"key {key!r} is not a numeric array ({exc})") from None


def _positions(path: Path, data: dict) -> np.ndarray:
    positions = _array(path, data, "positions")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ReaderError(path, f"positions must have shape (N, 3), got {positions.shape}")
    return positions


def read_symgnn(path: str | Path, data: dict | None = None) -> list[Snapshot]:
    """Read a SymGNN pickle: one snapshot with every per-atom array as a field."""
    path = Path(path)
    data = load_pickle(path) if data is None else data
    _require(path, data, ("positions", "types", "box"), "symgnn")
    positions = _positions(path, data)
    cell = orthorhombic_cell(path, _array(path, data, "box"))
    types, labels = encode_types(path, _array(path, data, "types", dtype=None))
    n_atoms = len(positions)
    fields = {}
    for key, value in data.items():
        if key in _SYMGNN_SKIP or not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            continue
        if value.ndim not in (1, 2) or len(value) != n_atoms:
            raise ReaderError(path, f"shape mismatch: {n_atoms} positions but {key!r} has {value.shape}")
        fields[key] = value.astype(np.float64)
    return [
        Snapshot(
            # Documented as centred on 0 inside [-L/2, L/2): shift to the corner origin.
            positions=positions + np.diag(cell) / 2,
            types=types,
            type_labels=labels,
            cell=cell,
            source=str(path),
            fields=fields,
            default_target=SYMGNN_TARGET if SYMGNN_TARGET in fields else None,
            units={"length": "angstrom", SYMGNN_TARGET: "eV (energy barrier)", "pot": "eV"},
        )
    ]


def propensity(initial: np.ndarray, trajectories: np.ndarray) -> np.ndarray:
    """Dynamic propensity: mean over trajectories of |r_i(t) - r_i(0)|.

    Args:
        initial: [n_atoms, 3] absolute positions at t = 0.
        trajectories: [n_trajectories, n_atoms, 3] absolute positions at t.

    Returns:
        [n_atoms] mean displacement norm.
    """
    return np.linalg.norm(trajectories - initial[None], axis=-1).mean(axis=0)


def read_bapst(path: str | Path, data: dict | None = None, time_index: int | None = None) -> list[Snapshot]:
    """Read a pickle of the DeepMind glassy-dynamics data set (Bapst et al. 2020).

    The ``propensity`` field has one column per time index (``propensity_0`` ...). It is
    taken from the key ``targets`` (n_times, n_atoms) when present (``test_large``
    stores only the first time index of the trajectories but all averaged targets),
    otherwise computed from ``trajectory_target_positions``.

    Args:
        time_index: keep only this time index (column); None keeps all.
    """
    path = Path(path)
    data = load_pickle(path) if data is None else data
    _require(path, data, ("positions", "types", "box"), "bapst")
    positions = _positions(path, data)
    n_atoms = len(positions)
    if "targets" in data:
        targets = _array(path, data, "targets")
        if targets.ndim == 1:
            targets = targets[None]
        if targets.ndim != 2 or targets.shape[1] != n_atoms:
            raise ReaderError(
                path, f"shape mismatch: {n_atoms} positions but targets of shape {targets.shape}"
            )
    elif "trajectory_target_positions" in data:
        rows = []
        for t, block in enumerate(data["trajectory_target_positions"]):
            block = np.asarray(block, dtype=np.float64)
            if block.ndim != 3 or block.shape[1:] != (n_atoms, 3):
                raise ReaderError(
                    path,
                    f"shape mismatch: {n_atoms} positions but trajectory_target_positions[{t}] "
                    f"has {block.shape}",
                )
            rows.append(propensity(positions, block))
        targets = np.asarray(rows).reshape(-1, n_atoms)
    else:
        raise ReaderError(path, "missing key: neither 'targets' nor 'trajectory_target_positions' is present")
    columns = list(range(len(targets)))
    if time_index is not None:
        if not -len(columns) <= time_index < len(columns):
            raise ReaderError(
                path, f"time_index {time_index} out of range: the file has {len(columns)} time indices"
            )
        columns = [columns[time_index]]
    times = np.asarray(data.get("time", []), dtype=np.float64)
    time_indices = list(np.asarray(data.get("time_indices", []), dtype=np.int64))
    metadata = dict(data.get("metadata", {}))
    if len(times) and len(time_indices) >= len(targets):
        metadata["times"] = [float(times[time_indices[c]]) for c in columns]
    if "is_values" in data:
        metadata["is_values"] = [float(np.asarray(data["is_values"])[c]) for c in columns]
    types, labels = encode_types(path, _array(path, data, "types", dtype=None))
    return [
        Snapshot(
            positions=positions,
            types=types,
            type_labels=labels,
            cell=orthorhombic_cell(path, _array(path, data, "box")),
            source=str(path),
            fields={PROPENSITY: targets[columns].T.copy()},
            column_names={PROPENSITY: [f"{PROPENSITY}_{c}" for c in columns]},
            default_target=PROPENSITY,
            default_mask_labels=("0",),
            units={"length": "LJ sigma", PROPENSITY: "LJ sigma"},
            metadata=metadata,
        )
    ]


def is_bapst(data: dict) -> bool:
    """Whether an unpickled dict looks like the Bapst format rather than SymGNN's."""
    return "targets" in data or "trajectory_target_positions" in data or "time_indices" in data
