"""Steps 1-3 of the simulation protocol (:mod:`glassgnn.simulation`): melt, quench,
equilibrate at T, and sample the configurations the trajectories start from.

Equilibration runs Nose-Hoover NVT windows, each measuring the self-intermediate
scattering function ``F_s(k, t)`` of the A particles from its own start; the rule that
ends it (:func:`is_equilibrated`) is pure logic on the windows' F_s curves, tested
without LAMMPS.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from glassgnn.lammps_driver import KASystem, box_length
from glassgnn.simulation import SimulationConfig, SimulationError, md_steps

GRID_PER_DECADE = 24  # log-spaced time grid density (the public files use about 24 per decade)


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
    system.run(md_steps(cfg, cfg.melt_time))
    system.command(["unfix melt", f"fix quench all nvt temp {cfg.t_melt!r} {cfg.temperature!r} {damp!r}"])
    system.run(md_steps(cfg, cfg.quench_time))
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
    grid = log_grid_steps(md_steps(cfg, cfg.max_window_time))
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
        spacing = md_steps(cfg, cfg.spacing_taus * tau_alpha)
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
