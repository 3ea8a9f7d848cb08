""":func:`generate`, the body of simulate.py: a resumable run writing an output directory,
its manifest and one pickle per configuration.

Directory layout::

    DIR/manifest.json          every parameter, seeds, LAMMPS version, tau_alpha, timings
    DIR/configurations.npz     the equilibrated configurations all trajectories start from
    DIR/config_0000.pickle ... one file per configuration, Bapst et al. layout

Each file is written temp-then-rename. A restarted run with the same parameters
reuses ``configurations.npz`` and skips every configuration already listed in
the manifest; different parameters are refused unless ``overwrite``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from glassgnn.equilibration import crossing_time, equilibrate
from glassgnn.fileio import OutputExistsError, atomic_path, sha256, write_json
from glassgnn.lammps_driver import KA_CUTOFF, KA_DENSITY, KA_FRACTION_A, KA_PAIRS, lammps_version
from glassgnn.simulation import (
    SimulationConfig,
    SimulationError,
    bapst_record,
    isoconfigurational,
    time_selection,
)

MANIFEST = "manifest.json"
CONFIGURATIONS = "configurations.npz"
PICKLE_PROTOCOL = 4


def config_file(index: int) -> str:
    """File name of configuration ``index``."""
    return f"config_{index:04d}.pickle"


def _own_files(out: Path) -> list[Path]:
    return [p for p in [out / MANIFEST, out / CONFIGURATIONS, *out.glob("config_*.pickle")] if p.exists()]


def _prepare_directory(out: Path, cfg: SimulationConfig, overwrite: bool) -> dict | None:
    """Create/check ``out``; return the manifest of a run to resume, or None."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / ".write_test") as tmp:
            tmp.write_bytes(b"")
        (out / ".write_test").unlink()
    except OSError as err:
        raise SimulationError(f"cannot write to output directory {out}: {err.strerror or err}") from err
    existing = _own_files(out)
    if overwrite:
        for path in existing:
            path.unlink()
        return None
    if not existing:
        return None
    if not (out / MANIFEST).exists():
        raise OutputExistsError(f"{out} holds simulation files but no {MANIFEST}; pass --overwrite")
    manifest = json.loads((out / MANIFEST).read_text())
    wanted = json.loads(json.dumps(cfg.as_dict()))
    changed = [k for k in wanted if manifest.get("parameters", {}).get(k) != wanted[k]]
    if changed:
        old = manifest.get("parameters", {})
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {wanted[k]!r}" for k in changed)
        raise OutputExistsError(
            f"{out} was made with other parameters ({detail}); pass --overwrite or choose another directory"
        )
    return manifest


def _new_manifest(cfg: SimulationConfig, command: str | None, version: str) -> dict:
    return {
        "what": "Kob-Andersen propensity data in the Bapst et al. (2020) pickle layout, made by simulate.py",
        "status": "running",
        "command": command,
        "parameters": json.loads(json.dumps(cfg.as_dict())),
        "potential": {
            "pairs": {
                f"{'AB'[a]}{'AB'[b]}": {"epsilon": e, "sigma": s} for (a, b), (e, s) in KA_PAIRS.items()
            },
            "cutoff_in_sigma": KA_CUTOFF,
            "shifted": True,
            "density": KA_DENSITY,
            "fraction_A": KA_FRACTION_A,
            "units": "LJ reduced units (sigma_AA, eps_AA, unit masses)",
        },
        "seeds": {
            "lammps_insertion_and_melt_velocities": f"numpy SeedSequence([{cfg.seed}, 0]).generate_state(2)",
            "trajectory_velocities": f"numpy default_rng([{cfg.seed}, 1, config, trajectory])",
        },
        "execution": f"LAMMPS OpenMP styles (-sf omp) on {cfg.threads} threads for every run",
        "versions": {
            "lammps": version,
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "configs": {},
        "timings": {},
    }


def _equilibrated(out: Path, cfg: SimulationConfig, manifest: dict) -> dict:
    """The equilibrated configurations: from ``configurations.npz`` or a new equilibration."""
    path = out / CONFIGURATIONS
    if path.exists() and "equilibration" in manifest:
        with np.load(path, allow_pickle=False) as data:
            eq = {key: data[key] for key in data.files}
        eq["tau_alpha"] = manifest["equilibration"]["tau_alpha_nvt"]
        eq["pressure"] = manifest["metadata_pressure"]
        return eq
    start = time.perf_counter()
    eq = equilibrate(cfg, log=tqdm.write)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{k: eq[k] for k in ("positions", "types", "box", "grid_steps", "fs")})
    manifest["equilibration"] = eq["report"]
    manifest["metadata_pressure"] = eq["pressure"]
    manifest["fs_equilibrium"] = {
        "k": cfg.k,
        "time": (eq["grid_steps"][: len(eq["fs"])] * cfg.dt).tolist(),
        "fs": eq["fs"].tolist(),
    }
    manifest["timings"]["equilibration_s"] = time.perf_counter() - start
    write_json(out / MANIFEST, manifest)
    return eq


def generate(
    cfg: SimulationConfig,
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Run (or resume) a whole simulate.py job; return the final manifest."""
    cfg.validate()
    version = lammps_version()  # fails before anything is written when LAMMPS is missing
    out = Path(output_dir)
    manifest = _prepare_directory(out, cfg, overwrite)
    if manifest is None:
        command = command or shlex.join(["python", Path(sys.argv[0]).name, *sys.argv[1:]])
        manifest = _new_manifest(cfg, command, version)
        write_json(out / MANIFEST, manifest)
    eq = _equilibrated(out, cfg, manifest)
    if cfg.n_iso:
        steps, time_indices, nominal = time_selection(cfg, eq["grid_steps"], eq["fs"])
    else:  # snapshots only: no trajectories, so no stored times
        steps, time_indices, nominal = np.zeros(0, np.int64), [], np.zeros(0)
    manifest["time"] = (steps * cfg.dt).tolist()
    manifest["time_indices"] = time_indices
    configs = tqdm(range(cfg.n_configs), desc="configurations", disable=not progress)
    for c in configs:
        name = config_file(c)
        if name in manifest["configs"] and (out / name).exists():
            continue
        start = time.perf_counter()
        if cfg.n_iso:
            with tqdm(
                total=cfg.n_iso, desc=f"trajectories of {name}", leave=False, disable=not progress
            ) as bar:
                velocities, trajectories, fs = isoconfigurational(
                    cfg, c, eq["positions"][c], eq["types"], steps, progress=bar.update
                )
        else:
            n = len(eq["types"])
            velocities, trajectories, fs = np.zeros((0, n, 3)), np.zeros((0, 0, n, 3)), np.zeros(0)
        is_values = nominal if nominal is not None else fs[time_indices]
        record = bapst_record(
            cfg, eq["positions"][c], eq["types"], eq["box"], steps, time_indices, is_values,
            velocities, trajectories, manifest["metadata_pressure"],
        )  # fmt: skip
        with atomic_path(out / name) as tmp, open(tmp, "wb") as handle:
            pickle.dump(record, handle, protocol=PICKLE_PROTOCOL)
        manifest["configs"][name] = {
            "sha256": sha256(out / name),
            "wall_time_s": time.perf_counter() - start,
            "fs": fs.tolist(),
            "tau_alpha": _finite(crossing_time(steps * cfg.dt, fs, math.exp(-1.0))),
        }
        write_json(out / MANIFEST, manifest)
    _summarise(manifest, steps * cfg.dt, time_indices)
    write_json(out / MANIFEST, manifest)
    return manifest


def _finite(value: float) -> float | None:
    """JSON has no NaN: a relaxation time not reached on the grid is stored as null."""
    return None if math.isnan(value) else value


def _summarise(manifest: dict, times: np.ndarray, time_indices: list[int]) -> None:
    """Production F_s over all configurations, tau_alpha (NVE) and total wall time."""
    fs = np.mean([entry["fs"] for entry in manifest["configs"].values()], axis=0)
    manifest["fs_production"] = {"time": times.tolist(), "fs": fs.tolist()}
    manifest["fs_at_time_indices"] = [float(fs[i]) for i in time_indices]
    manifest["tau_alpha"] = _finite(crossing_time(times, fs, math.exp(-1.0)))
    timings = manifest["timings"]
    timings["configurations_s"] = sum(entry["wall_time_s"] for entry in manifest["configs"].values())
    timings["total_s"] = timings.get("equilibration_s", 0.0) + timings["configurations_s"]
    manifest["status"] = "complete"
