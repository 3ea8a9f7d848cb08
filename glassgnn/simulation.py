"""Propensity data for the Kob-Andersen liquid, made with LAMMPS, in the Bapst et al. layout.

Protocol (Bapst et al., Nature Physics 16, 448 (2020), Methods; Widmer-Cooper,
Harrowell & Fynewever, PRL 93, 135701 (2004) for the isoconfigurational ensemble):

1. Random insertion, energy minimisation, melt at ``t_melt`` (NVT), linear
   quench to the target temperature T (NVT).
2. Equilibration at T (Nose-Hoover NVT) in windows. Each window measures the
   self-intermediate scattering function of the A particles from its own start,
   ``F_s(k, t) = <sin(k dr) / (k dr)>`` (isotropic average, ``k`` at the first
   peak of S(k)), until it falls below half the lowest stored level, and yields that window's
   alpha-relaxation time ``tau_alpha`` (``F_s = 1/e``). The first half of the
   windows counts as ageing; equilibration stops when it has lasted
   ``equil_taus`` relaxation times and the mean F_s of the first and second
   halves of the remaining windows give the same ``tau_alpha`` within
   ``tau_tolerance`` (no ageing left). Their mean F_s fixes the stored times.
3. ``n_configs`` configurations taken from the same NVT run, ``spacing_taus``
   relaxation times apart.
4. Per configuration, ``n_iso`` NVE trajectories from the same positions with
   velocities drawn fresh from Maxwell-Boltzmann at T (total momentum removed).
   Positions are recorded on a log-spaced time grid; the propensity of particle
   i at time t is the mean over trajectories of ``|r_i(t) - r_i(0)|`` (unwrapped).
   ``n_iso = 0`` skips this step: snapshots only, for per-snapshot targets such as
   the temperature in ``metadata`` (the per-trajectory entries are then empty).

Steps 1-3: :mod:`glassgnn.equilibration`; step 4 and the stored records: here; the
run directory: :mod:`glassgnn.simulation_run`.

Every trajectory starts from a fresh LAMMPS instance built from stored
positions and velocities, so each file depends only on the stored
configurations, the seed and the (fixed) thread count: a resumed run writes the
same bytes as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from glassgnn.lammps_driver import KASystem, box_length, max_cutoff

# Nominal F_s levels whose crossing times define the stored time indices, as in
# the published files: 0.9 ... 0.1, then 1/e (the alpha-relaxation time).
IS_VALUES = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, math.exp(-1.0))
K_FIRST_PEAK = 7.25  # first peak of S(k) of the KA liquid at density 1.2 (Kob & Andersen 1995)


class SimulationError(ValueError):
    """Invalid simulation parameters or a protocol that cannot complete."""


@dataclass(frozen=True)
class SimulationConfig:
    """Every parameter of a data set; stored verbatim in its manifest.

    Times are in LJ units (sigma_AA sqrt(m / eps_AA)), temperatures in eps_AA / k_B.
    """

    n_atoms: int = 1000
    temperature: float = 0.50
    n_configs: int = 20
    n_iso: int = 16
    seed: int = 0
    threads: int = 2
    dt: float = 0.005
    is_values: tuple[float, ...] = IS_VALUES  # F_s levels whose crossing times are stored
    times: tuple[float, ...] | None = None  # explicit stored times instead of is_values crossings
    t_melt: float = 2.0
    melt_time: float = 20.0
    quench_time: float = 20.0
    thermostat_damp: float = 0.5
    equil_taus: float = 10.0
    min_windows: int = 3
    max_windows: int = 30
    tau_tolerance: float = 0.25
    max_window_time: float = 2.0e4
    spacing_taus: float = 2.0
    k: float = K_FIRST_PEAK
    store: str = "all"  # "all": trajectories at every time index; "first": first index + targets
    float32: bool = False

    def validate(self) -> None:
        """Raise :class:`SimulationError` naming the first invalid parameter."""
        if not self.temperature > 0:
            raise SimulationError(f"temperature must be positive, got {self.temperature}")
        if self.n_atoms < 1:
            raise SimulationError(f"n_atoms must be positive, got {self.n_atoms}")
        length = box_length(self.n_atoms)
        if length <= 2 * max_cutoff():
            min_atoms = math.floor(1.2 * (2 * max_cutoff()) ** 3) + 1
            raise SimulationError(
                f"n_atoms={self.n_atoms} gives a box of {length:.3f} sigma, not larger than twice the "
                f"cutoff {max_cutoff():g}; use at least {min_atoms} atoms"
            )
        for name in ("n_configs", "threads", "min_windows", "max_windows"):
            if getattr(self, name) < 1:
                raise SimulationError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_iso < 0:
            raise SimulationError(f"n_iso must be at least 0 (0: snapshots only), got {self.n_iso}")
        for name in ("dt", "t_melt", "melt_time", "quench_time", "thermostat_damp", "spacing_taus", "k"):
            if not getattr(self, name) > 0:
                raise SimulationError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.is_values or not all(0 < v < 1 for v in self.is_values):
            raise SimulationError(f"is_values must be F_s levels between 0 and 1, got {self.is_values}")
        if self.times is not None and (len(self.times) == 0 or min(self.times) < self.dt):
            raise SimulationError(f"--times must be a non-empty list of times >= dt={self.dt}")
        if self.store not in ("all", "first"):
            raise SimulationError(f"store must be 'all' or 'first', got {self.store!r}")

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["times"] = None if self.times is None else list(self.times)
        out["is_values"] = list(self.is_values)
        return out


def md_steps(cfg: SimulationConfig, time: float) -> int:
    """Whole MD steps (at least one) covering ``time`` (LJ time)."""
    return max(1, int(round(time / cfg.dt)))


def time_selection(cfg: SimulationConfig, grid_steps: np.ndarray, fs_eq: np.ndarray):
    """The stored time grid (steps, starting at 0), the time indices and their ``is_values``.

    Default: the first grid times at which the equilibrium F_s falls to each of
    ``cfg.is_values``; ``is_values`` are those nominal levels. With ``cfg.times``: the
    given times (rounded to whole steps) merged into the grid; ``is_values`` are
    then filled per configuration with the F_s measured there (None here).
    """
    if cfg.times is None:
        indices = []
        for level in cfg.is_values:
            below = np.nonzero(fs_eq <= level)[0]
            indices.append(int(below[0]) if len(below) else len(fs_eq) - 1)
        steps = np.concatenate([[0], grid_steps[: max(indices) + 1]])
        return steps, [i + 1 for i in indices], np.array(cfg.is_values)
    wanted = np.array([md_steps(cfg, t) for t in cfg.times])
    steps = np.union1d(np.concatenate([[0], grid_steps[grid_steps <= wanted.max()]]), wanted)
    return steps, [int(np.searchsorted(steps, w)) for w in wanted], None


def isoconfigurational(
    cfg: SimulationConfig,
    config_index: int,
    positions: np.ndarray,
    types: np.ndarray,
    steps: np.ndarray,
    progress: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 4: ``n_iso`` NVE trajectories from one configuration.

    Args:
        positions: [N, 3] configuration (inside the box).
        types: [N] 0/1.
        steps: [n_times] increasing step counts, ``steps[0] == 0``.

    Returns:
        velocities [M, N, 3] drawn at t=0, trajectories [n_times, M, N, 3] absolute
        unwrapped positions (``[0]`` equals ``positions``), and the F_s of the A
        particles [n_times] averaged over the M trajectories.
    """
    n = len(positions)
    velocities = np.empty((cfg.n_iso, n, 3))
    trajectories = np.empty((len(steps), cfg.n_iso, n, 3))
    for m in range(cfg.n_iso):
        rng = np.random.default_rng([cfg.seed, 1, config_index, m])
        v = rng.normal(0.0, math.sqrt(cfg.temperature), size=(n, 3))  # unit masses
        velocities[m] = v - v.mean(axis=0)  # no centre-of-mass drift in the displacements
        with KASystem(
            n, cfg.threads, cfg.dt, positions=positions, types=types, velocities=velocities[m]
        ) as s:
            s.command("fix nve all nve")
            # Displacements from LAMMPS's own start, added to the given positions,
            # so trajectories[0] is exactly ``positions`` whatever LAMMPS remaps.
            start = s.unwrapped_positions()
            trajectories[0, m] = positions
            for j in range(1, len(steps)):
                s.run(int(steps[j] - steps[j - 1]))
                trajectories[j, m] = positions + (s.unwrapped_positions() - start)
        if progress is not None:
            progress()
    disp = np.linalg.norm(trajectories[:, :, types == 0] - trajectories[:1, :, types == 0], axis=-1)
    fs = np.sinc(cfg.k * disp / np.pi).mean(axis=(1, 2))
    return velocities, trajectories, fs


def propensity(positions: np.ndarray, trajectory_positions: np.ndarray) -> np.ndarray:
    """Mean over trajectories of ``|r_i(t) - r_i(0)|``.

    Args:
        positions: [N, 3] positions at t=0.
        trajectory_positions: [M, N, 3] unwrapped positions at time t.

    Returns:
        [N] propensities (sigma_AA).
    """
    return np.linalg.norm(np.asarray(trajectory_positions, np.float64) - positions, axis=-1).mean(axis=0)


def bapst_record(
    cfg: SimulationConfig,
    positions: np.ndarray,
    types: np.ndarray,
    box: np.ndarray,
    steps: np.ndarray,
    time_indices: list[int],
    is_values: np.ndarray,
    velocities: np.ndarray,
    trajectories: np.ndarray,
    pressure: float,
) -> dict:
    """One configuration in the layout of the public Bapst et al. pickles.

    Same keys, containers and dtypes as the published files: ``time`` and
    ``time_indices`` are lists, ``trajectory_start_velocities`` a list of M [N, 3]
    arrays, ``trajectory_target_positions`` a list over time indices of lists of
    M [N, 3] absolute positions. ``store="first"`` keeps only the first time
    index there and adds ``targets`` (list of [N] propensities per time index), as
    in the published ``test_large`` file. ``float32`` stores velocities and
    trajectories in single precision (targets are computed in double first).
    Snapshots only (``n_iso = 0``, empty ``steps`` and ``time_indices``): ``time``,
    ``time_indices``, ``is_values`` and both trajectory lists are empty.
    """
    real = np.float32 if cfg.float32 else np.float64
    kept = time_indices if cfg.store == "all" else time_indices[:1]
    record = {
        "positions": np.asarray(positions, np.float64),
        "types": np.asarray(types, np.int32),
        "box": np.asarray(box, np.float64),
        "time": [float(s * cfg.dt) for s in steps],
        "is_values": np.asarray(is_values, np.float64),
        "time_indices": [int(i) for i in time_indices],
        "metadata": {"temperature": cfg.temperature, "pressure": pressure, "fluid": "Kob Andersen"},
        "trajectory_start_velocities": [v.astype(real) for v in velocities],
        "trajectory_target_positions": [[p.astype(real) for p in trajectories[i]] for i in kept],
    }
    if cfg.store == "first":
        record["targets"] = [propensity(positions, trajectories[i]) for i in time_indices]
    return record
