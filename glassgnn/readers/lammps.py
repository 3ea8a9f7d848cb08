"""LAMMPS text dump reader (``dump atom``/``dump custom``; ``.dump``, ``.lammpstrj``).

Multi-frame; orthorhombic and triclinic boxes; coordinates as ``x y z`` (wrapped),
``xu yu zu`` (unwrapped), ``xs ys zs`` (scaled) or ``xsu ysu zsu`` (scaled unwrapped).
Every other numeric column (``c_propensity``, ``vx``, ...) becomes a per-atom field.
Atoms are sorted by ``id`` so that fields line up across frames.

Box conventions follow https://docs.lammps.org/Howto_triclinic.html: a triclinic
header ``ITEM: BOX BOUNDS xy xz yz ...`` gives the *bounding* box and the tilts;
the cell vectors are a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz).
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from glassgnn.readers.base import ReaderError, Snapshot, encode_types

COORDINATE_STYLES = (("x", "y", "z"), ("xu", "yu", "zu"), ("xs", "ys", "zs"), ("xsu", "ysu", "zsu"))
# Columns that are bookkeeping, not per-atom physics.
_NOT_FIELDS = {"id", "type", "element", "mol", "ix", "iy", "iz"}


def _box(path: Path, header: str, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cell (rows) and origin from the three ``BOX BOUNDS`` lines."""
    try:
        values = np.array([[float(v) for v in line.split()] for line in lines])
    except ValueError:
        raise ReaderError(path, f"unreadable BOX BOUNDS lines {lines}") from None
    if "xy" in header.split():
        if values.shape != (3, 3):
            raise ReaderError(path, f"triclinic BOX BOUNDS need 3 numbers per line, got {lines}")
        (xlo_b, xhi_b, xy), (ylo_b, yhi_b, xz), (zlo, zhi, yz) = values
        xlo = xlo_b - min(0.0, xy, xz, xy + xz)
        xhi = xhi_b - max(0.0, xy, xz, xy + xz)
        ylo = ylo_b - min(0.0, yz)
        yhi = yhi_b - max(0.0, yz)
        cell = np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi - zlo]])
        return cell, np.array([xlo, ylo, zlo])
    if values.shape[0] != 3 or values.shape[1] < 2:
        raise ReaderError(path, f"BOX BOUNDS need 3 lines of 'lo hi', got {lines}")
    lo, hi = values[:, 0], values[:, 1]
    return np.diag(hi - lo), lo


def _frame(path: Path, frame: int, columns: list[str], block: list[str], cell, origin, meta) -> Snapshot:
    if len(set(columns)) != len(columns):
        raise ReaderError(path, f"frame {frame}: repeated column names {columns}")
    try:
        table = pd.read_csv(io.StringIO("".join(block)), sep=r"\s+", header=None, names=columns)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ReaderError(path, f"frame {frame}: unreadable ATOMS block ({exc})") from None
    if table.isna().to_numpy().any() and len(table) == len(block):
        raise ReaderError(path, f"frame {frame}: some ATOMS lines have fewer than {len(columns)} columns")
    if "id" in table:
        table = table.sort_values("id", kind="stable")
    style = next((s for s in COORDINATE_STYLES if all(c in table for c in s)), None)
    if style is None:
        raise ReaderError(path, f"frame {frame}: no coordinate columns (x/y/z, xu, xs or xsu) in {columns}")
    try:
        coords = table[list(style)].to_numpy(dtype=np.float64)
    except ValueError:
        raise ReaderError(path, f"frame {frame}: non-numeric {'/'.join(style)} coordinates") from None
    # Scaled coordinates are fractions of the cell; others are absolute: make both origin-relative.
    positions = coords @ cell if style[0].startswith("xs") else coords - origin
    label_column = "type" if "type" in table else "element" if "element" in table else None
    if label_column is None:
        raise ReaderError(path, f"frame {frame}: no 'type' or 'element' column in {columns}")
    types, labels = encode_types(path, table[label_column].to_numpy())
    fields = {}
    for name in columns:
        if name in _NOT_FIELDS or name in style:
            continue
        values = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            raise ReaderError(path, f"frame {frame}: column {name!r} is not numeric or has NaN")
        fields[name] = values
    return Snapshot(
        positions=positions,
        types=types,
        type_labels=labels,
        cell=cell,
        source=str(path),
        frame=frame,
        fields=fields,
        metadata=dict(meta, coordinate_style=style[0], origin=origin.tolist()),
    )


def _header(path: Path, handle, frame: int):
    """Read one frame's header lines; return (meta, n_atoms, cell, origin, columns) or None at EOF."""
    meta, n_atoms, cell, origin, columns = {}, None, None, None, None
    while columns is None:
        line = handle.readline()
        if not line:
            if n_atoms is None and cell is None and not meta:
                return None  # clean end of file
            raise ReaderError(
                path, f"frame {frame}: truncated header (need NUMBER OF ATOMS, BOX BOUNDS, ATOMS)"
            )
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if not line.startswith("ITEM:"):
            raise ReaderError(path, f"frame {frame}: expected an 'ITEM:' header, got {line[:60]!r}")
        if line.startswith("ITEM: ATOMS"):
            columns = line.split()[2:]
            continue
        if line.startswith("ITEM: BOX BOUNDS"):
            cell, origin = _box(path, line, [handle.readline().strip() for _ in range(3)])
            continue
        value = handle.readline().strip()  # every other ITEM has one value line
        try:
            if line.startswith("ITEM: TIMESTEP"):
                meta["timestep"] = int(value.split()[0])
            elif line.startswith("ITEM: NUMBER OF ATOMS"):
                n_atoms = int(value)
        except (IndexError, ValueError):
            raise ReaderError(path, f"frame {frame}: unreadable value {value!r} after {line!r}") from None
    if n_atoms is None or cell is None:
        raise ReaderError(path, f"frame {frame}: truncated header (need NUMBER OF ATOMS, BOX BOUNDS, ATOMS)")
    return meta, n_atoms, cell, origin, columns


def read_lammps(path: str | Path) -> list[Snapshot]:
    """Read every frame of a LAMMPS text dump, one frame in memory as text at a time."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ReaderError(path, "empty file")
    snapshots = []
    try:
        with open(path) as handle:
            while (header := _header(path, handle, len(snapshots))) is not None:
                meta, n_atoms, cell, origin, columns = header
                block = list(itertools.islice(handle, n_atoms))
                if len(block) < n_atoms or any(line.startswith("ITEM:") for line in block):
                    raise ReaderError(
                        path, f"frame {len(snapshots)}: truncated: expected {n_atoms} atom lines"
                    )
                snapshots.append(_frame(path, len(snapshots), columns, block, cell, origin, meta))
    except UnicodeDecodeError:
        raise ReaderError(
            path, "not a text file, so not a LAMMPS dump (binary content); check --format"
        ) from None
    if not snapshots:
        raise ReaderError(path, "empty file")
    return snapshots
