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
GRID_PER_DECADE = 24  # log-spaced time grid density (the public files use about 24 per decade)


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


def self_isf(displacements: np.ndarray, k: float) -> float:
    """Isotropic self-intermediate scattering function ``<sin(k r)/(k r)>``.

    Args:
        displacements: [n, 3] unwrapped displacements of the particles averaged over.
        k: wave number (1 / sigma_AA).
    """
    r = np.linalg.norm(displacements, axis=-1)
    return float(np.mean(np.sinc(k * r / np.pi)))


def wrap_into_box(positions: np.ndarray, length: float) -> np.ndarray:
    """[N, 3] positions mapped into [0, length) (LAMMPS lets atoms stray out between re-neighbourings)."""
    wrapped = np.mod(positions, length)
    wrapped[wrapped >= length] = 0.0  # np.mod of a tiny negative number can round up to length
    return wrapped


def _steps(cfg: SimulationConfig, time: float) -> int:
    """Whole MD steps (at least one) covering ``time`` (LJ time)."""
    return max(1, int(round(time / cfg.dt)))


def log_grid_steps(max_steps: int, per_decade: int = GRID_PER_DECADE) -> np.ndarray:
    """Strictly increasing step counts, log-spaced from 1 to ``max_steps`` (inclusive)."""
    n = int(math.ceil(per_decade * math.log10(max(max_steps, 2)))) + 1
    steps = np.unique(np.round(np.geomspace(1, max_steps, n)).astype(np.int64))
    return steps


def crossing_time(times: np.ndarray, fs: np.ndarray, level: float) -> float:
    """First time at which ``fs`` falls to ``level``, interpolated linearly in log t; NaN if never."""
    below = np.nonzero(fs <= level)[0]
    if len(below) == 0:
        return float("nan")
    i = int(below[0])
    if i == 0 or times[i - 1] <= 0:
        return float(times[i])
    frac = (fs[i - 1] - level) / (fs[i - 1] - fs[i])
    return float(np.exp(np.log(times[i - 1]) + frac * (np.log(times[i]) - np.log(times[i - 1]))))


def _isf_window(system: KASystem, steps: np.ndarray, mask_a: np.ndarray, k: float, stop_below: float):
    """Advance along ``steps`` measuring F_s from the window start; stop once F_s <= stop_below."""
    origin = system.unwrapped_positions()
    fs, pe, press, done = [], [], [], 0
    for s in steps:
        system.run(int(s) - done)
        done = int(s)
        fs.append(self_isf((system.unwrapped_positions() - origin)[mask_a], k))
        pe.append(system.thermo("pe"))
        press.append(system.thermo("press"))
        if fs[-1] <= stop_below:
            break
    return np.array(fs), float(np.mean(pe)), float(np.mean(press)), done


def _mean_crossing(grid: np.ndarray, dt: float, curves: list[np.ndarray]) -> float:
    """tau_alpha (F_s = 1/e) of the mean of F_s curves on ``grid`` (common length); NaN if unreached."""
    n = min(len(c) for c in curves)
    return crossing_time(grid[:n] * dt, np.mean([c[:n] for c in curves], axis=0), math.exp(-1.0))


def kept_windows(curves: list[np.ndarray]) -> list[np.ndarray]:
    """The F_s curves that count as equilibrium: the second half (the first half may still age)."""
    return curves[len(curves) // 2 :]


def is_equilibrated(
    cfg: SimulationConfig, grid: np.ndarray, curves: list[np.ndarray], elapsed_time: float
) -> bool:
    """The convergence rule of step 2, apart from LAMMPS.

    Equilibrated once there are at least ``cfg.min_windows`` windows, the kept ones
    (:func:`kept_windows`, at least two) agree on tau_alpha between their first and second
    halves within ``cfg.tau_tolerance`` of the kept windows' tau_alpha (single windows
    scatter by ~30 %, so halves are compared, not windows), and the equilibration has
    lasted ``cfg.equil_taus`` times that tau_alpha.

    Args:
        cfg: ``min_windows``, ``tau_tolerance``, ``equil_taus`` and ``dt`` are used.
        grid: [n_grid] step counts the curves are measured on (each from its window's start).
        curves: F_s of each window so far, oldest first; each [<= n_grid].
        elapsed_time: duration of all windows so far (LJ time).
    """
    kept = kept_windows(curves)
    if len(curves) < cfg.min_windows or len(kept) < 2:
        return False
    tau_alpha = _mean_crossing(grid, cfg.dt, kept)
    tau_early = _mean_crossing(grid, cfg.dt, kept[: len(kept) // 2])
    tau_late = _mean_crossing(grid, cfg.dt, kept[len(kept) // 2 :])
    agree = abs(tau_early - tau_late) <= cfg.tau_tolerance * tau_alpha
    return agree and elapsed_time >= cfg.equil_taus * tau_alpha


def _melt_and_quench(system: KASystem, cfg: SimulationConfig, velocity_seed: int) -> None:
    """Step 1 after the random insertion: minimise, melt at ``t_melt``, quench to T; leaves NVT at T on."""
    damp = cfg.thermostat_damp
    system.command(
        [
            "minimize 1.0e-6 1.0e-8 1000 10000",
            f"velocity all create {cfg.t_melt!r} {velocity_seed} dist gaussian mom yes rot no loop geom",
            f"fix melt all nvt temp {cfg.t_melt!r} {cfg.t_melt!r} {damp!r}",
        ]
    )
    system.run(_steps(cfg, cfg.melt_time))
    system.command(["unfix melt", f"fix quench all nvt temp {cfg.t_melt!r} {cfg.temperature!r} {damp!r}"])
    system.run(_steps(cfg, cfg.quench_time))
    system.command(
        ["unfix quench", f"fix equil all nvt temp {cfg.temperature!r} {cfg.temperature!r} {damp!r}"]
    )


def _equilibration_windows(
    system: KASystem, cfg: SimulationConfig, grid: np.ndarray, mask_a: np.ndarray, log: Callable[[str], None]
) -> tuple[list[dict], list[np.ndarray], int, bool]:
    """Step 2: NVT windows until :func:`is_equilibrated` or ``cfg.max_windows``.

    Returns:
        Per-window report (tau_alpha, duration, mean pe and pressure), each window's F_s
        curve, the steps run, and whether the rule was met.
    """
    # Windows run past the lowest stored level so that their mean reaches it too.
    stop_below = 0.5 * min(*cfg.is_values, math.exp(-1.0))
    windows, curves, elapsed = [], [], 0
    while len(windows) < cfg.max_windows:
        fs, pe, press, done = _isf_window(system, grid, mask_a, cfg.k, stop_below)
        elapsed += done
        tau = crossing_time(grid[: len(fs)] * cfg.dt, fs, math.exp(-1.0))
        if math.isnan(tau):
            raise SimulationError(
                f"F_s did not reach 1/e within max_window_time={cfg.max_window_time} at "
                f"T={cfg.temperature}; the liquid is too slow for this budget (raise max_window_time)"
            )
        windows.append({"tau_alpha": tau, "duration": done * cfg.dt, "pe": pe, "pressure": press})
        curves.append(fs)
        log(f"equilibration window {len(windows)}: tau_alpha={tau:.3g} pe={pe:.4f} press={press:.3f}")
        if is_equilibrated(cfg, grid, curves, elapsed * cfg.dt):
            return windows, curves, elapsed, True
    return windows, curves, elapsed, False


def _sample_configurations(system: KASystem, cfg: SimulationConfig, spacing: int):
    """Step 3: ``n_configs`` wrapped configurations ``spacing`` steps apart, with their pe and pressure."""
    positions, pe, press = [], [], []
    for c in range(cfg.n_configs):
        if c > 0:
            system.run(spacing)
        positions.append(wrap_into_box(system.positions(), system.length))
        pe.append(system.thermo("pe"))
        press.append(system.thermo("press"))
    return positions, pe, press


def equilibrate(cfg: SimulationConfig, log: Callable[[str], None] = print) -> dict:
    """Steps 1-3 of the protocol: melt, quench, equilibrate, sample configurations.

    Returns:
        dict with ``positions`` [n_configs, N, 3] (wrapped), ``types`` [N] int32,
        ``box`` [3], ``grid_steps`` [n_grid] (log grid of step counts),
        ``fs`` [n_grid'] (equilibrium F_s on that grid, mean of the kept windows),
        ``tau_alpha``, ``pressure`` and the per-window ``report``.
    """
    seeds = np.random.SeedSequence([cfg.seed, 0]).generate_state(2) % (2**30) + 1
    grid = log_grid_steps(_steps(cfg, cfg.max_window_time))
    with KASystem(cfg.n_atoms, cfg.threads, cfg.dt, seed=int(seeds[0])) as system:
        types = system.types()
        _melt_and_quench(system, cfg, int(seeds[1]))
        windows, curves, elapsed, converged = _equilibration_windows(system, cfg, grid, types == 0, log)
        kept = kept_windows(curves)
        n = min(len(c) for c in kept)
        fs_eq = np.mean([c[:n] for c in kept], axis=0)
        tau_alpha = _mean_crossing(grid, cfg.dt, kept)
        if math.isnan(tau_alpha):
            raise SimulationError("the mean F_s of the equilibration windows never reached 1/e")
        spacing = _steps(cfg, cfg.spacing_taus * tau_alpha)
        positions, pe_samples, press_samples = _sample_configurations(system, cfg, spacing)
    report = {
        "windows": windows,
        "converged": converged,
        "equilibration_time": elapsed * cfg.dt,
        "tau_alpha_nvt": tau_alpha,
        "config_spacing_time": spacing * cfg.dt,
        "config_pe": pe_samples,
        "config_pressure": press_samples,
        "windows_kept_for_fs": len(kept),
        "pe_drift_kept_windows": windows[-1]["pe"] - windows[len(windows) // 2]["pe"],
    }
    if not converged:
        log(f"WARNING: equilibration did not converge in {cfg.max_windows} windows; see manifest")
    return {
        "positions": np.stack(positions),
        "types": types,
        "box": np.full(3, box_length(cfg.n_atoms)),
        "grid_steps": grid,
        "fs": fs_eq,
        "tau_alpha": tau_alpha,
        "pressure": float(np.mean([w["pressure"] for w in windows[-2:]] + press_samples)),
        "report": report,
    }


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
    wanted = np.array([_steps(cfg, t) for t in cfg.times])
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
