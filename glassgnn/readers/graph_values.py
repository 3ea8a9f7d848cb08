"""Per-snapshot (graph-level) values: temperature, energy, pressure, ... of a whole configuration.

Every reader keeps what a file says about a configuration as a whole in
``Snapshot.metadata``:

======  ==========================================================================
format  per-snapshot values
======  ==========================================================================
bapst   the pickle's ``metadata`` dict (``temperature``, ``pressure``, ...)
extxyz  the frame's ``info`` keys and scalar calculator results (``energy``, ...)
npz     every scalar (0-d) array of the file
lammps  ``timestep``; anything else comes from a side table (below)
======  ==========================================================================

A side table (CSV, ``construct_graph.py --graph_target_csv``) adds values to any
format, which is how LAMMPS dumps get theirs. Its header is ``file,frame,NAME,...``:
``file`` is an input path, relative to the table's own directory unless absolute;
``frame`` (optional column; empty or absent: every frame of the file) the frame
index inside that file, from 0. A table value overrides the file's own value of the
same name.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from glassgnn.readers.base import ReaderError, Snapshot

#: (absolute input path, frame or None for every frame) -> {name: value}
ValueTable = dict[tuple[str, int | None], dict[str, object]]


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def read_value_table(path: str | os.PathLike) -> ValueTable:
    """Read a side table of per-snapshot values (format in the module docstring).

    Raises:
        ReaderError: naming the table and the problem (no ``file`` column, a bad frame,
            a repeated (file, frame) row, no value column).
    """
    path = Path(path)
    if not path.is_file():
        raise ReaderError(path, "no such file (per-snapshot value table)")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip() for name in reader.fieldnames or []]
        if "file" not in columns:
            raise ReaderError(path, f"the value table needs a 'file' column, has {columns}")
        names = [name for name in columns if name not in ("file", "frame")]
        if not names:
            raise ReaderError(path, "the value table has no value column besides file and frame")
        table: ValueTable = {}
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            source = Path(row["file"])
            source = source if source.is_absolute() else path.parent / source
            frame_text = row.get("frame", "")
            try:
                frame = int(frame_text) if frame_text else None
            except ValueError:
                raise ReaderError(path, f"line {line}: frame {frame_text!r} is not an integer") from None
            key = (os.path.abspath(source), frame)
            if key in table:
                raise ReaderError(path, f"line {line}: repeats file {row['file']!r} frame {frame_text!r}")
            table[key] = {name: _number(row[name]) for name in names if row.get(name, "") != ""}
    return table


def apply_value_table(snapshot: Snapshot, table: ValueTable) -> None:
    """Add the table's values for this snapshot's file (all frames, then its frame) to its metadata."""
    source = os.path.abspath(snapshot.source)
    for key in ((source, None), (source, snapshot.frame)):
        snapshot.metadata.update(table.get(key, {}))


def _as_float(value) -> float | None:
    """``value`` as a float if it is one real number (bool excluded), else None."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        return float(value.reshape(()))
    return None


def numeric_names(snapshot: Snapshot) -> list[str]:
    """Names of the per-snapshot values of ``snapshot`` that are numbers."""
    return sorted(name for name, value in snapshot.metadata.items() if _as_float(value) is not None)


def graph_values(snapshot: Snapshot, names: list[str]) -> np.ndarray:
    """The per-snapshot values ``names`` of ``snapshot``, [len(names)] float64.

    Raises:
        ReaderError: naming the file and frame when a value is missing, not a number,
            or NaN/inf.
    """
    out = np.empty(len(names), dtype=np.float64)
    for i, name in enumerate(names):
        where = f"frame {snapshot.frame}: graph target {name!r}"
        if name not in snapshot.metadata:
            raise ReaderError(
                snapshot.source,
                f"{where} is missing (numeric per-snapshot values here: {numeric_names(snapshot)}; "
                "a side table can add values: --graph_target_csv)",
            )
        value = _as_float(snapshot.metadata[name])
        if value is None:
            raise ReaderError(snapshot.source, f"{where} is not a number: {snapshot.metadata[name]!r}")
        if not math.isfinite(value):
            raise ReaderError(snapshot.source, f"{where} is {value}")
        out[i] = value
    return out
