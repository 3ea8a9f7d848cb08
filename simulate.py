"""Make propensity training data: Kob-Andersen liquid simulated with LAMMPS.

Writes one pickle per configuration in the layout of the public Bapst et al.
(2020) glassy-dynamics data set, plus manifest.json. Resumable: rerun the same
command to continue a killed run. Example:

    python simulate.py --n_atoms 1000 --temperature 0.50 --n_configs 20 --n_iso 16 \\
        --output_dir datasets/ka_T0.50
"""

from __future__ import annotations

import argparse
import sys

from glassgnn.fileio import OutputExistsError
from glassgnn.lammps_driver import LammpsError
from glassgnn.simulation import SimulationConfig, SimulationError
from glassgnn.simulation_run import generate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = SimulationConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n_atoms", type=int, default=defaults.n_atoms, help="particles (80%% A, 20%% B)")
    p.add_argument("--temperature", type=float, default=defaults.temperature, help="T in eps_AA/k_B")
    p.add_argument("--n_configs", type=int, default=defaults.n_configs, help="independent configurations")
    p.add_argument(
        "--n_iso",
        type=int,
        default=defaults.n_iso,
        help="isoconfigurational trajectories each (0: snapshots only, no propensities)",
    )
    p.add_argument("--output_dir", required=True, help="directory for pickles and manifest.json")
    p.add_argument(
        "--times", type=float, nargs="+", default=None,
        help="stored times (LJ units); default: where F_s of A reaches 0.9,...,0.1 and 1/e",
    )  # fmt: skip
    p.add_argument(
        "--is_values", type=float, nargs="+", default=list(defaults.is_values),
        help="F_s levels whose crossing times are stored (default: 0.9 ... 0.1 and 1/e, as Bapst et al.)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument(
        "--threads", type=int, default=defaults.threads, help="OpenMP threads (fixed per data set)"
    )
    p.add_argument("--dt", type=float, default=defaults.dt, help="MD time step (LJ units)")
    p.add_argument("--melt_time", type=float, default=defaults.melt_time, help="NVT at T=2.0 (LJ units)")
    p.add_argument(
        "--quench_time", type=float, default=defaults.quench_time, help="linear NVT quench (LJ units)"
    )
    p.add_argument(
        "--equil_taus", type=float, default=defaults.equil_taus, help="min equilibration in tau_alpha"
    )
    p.add_argument(
        "--spacing_taus", type=float, default=defaults.spacing_taus, help="tau_alpha between configs"
    )
    p.add_argument("--max_window_time", type=float, default=defaults.max_window_time,
                   help="longest F_s measurement window of the equilibration (LJ units)")  # fmt: skip
    p.add_argument("--store", choices=("all", "first"), default=defaults.store,
                   help="trajectories at all time indices, or the first only plus 'targets'")  # fmt: skip
    p.add_argument("--float32", action="store_true", help="store velocities and trajectories as float32")
    p.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = SimulationConfig(
        n_atoms=args.n_atoms,
        temperature=args.temperature,
        n_configs=args.n_configs,
        n_iso=args.n_iso,
        seed=args.seed,
        threads=args.threads,
        dt=args.dt,
        times=None if args.times is None else tuple(args.times),
        is_values=tuple(args.is_values),
        melt_time=args.melt_time,
        quench_time=args.quench_time,
        equil_taus=args.equil_taus,
        spacing_taus=args.spacing_taus,
        max_window_time=args.max_window_time,
        store=args.store,
        float32=args.float32,
    )
    try:
        manifest = generate(cfg, args.output_dir, overwrite=args.overwrite, progress=not args.no_progress)
    except (SimulationError, LammpsError, OutputExistsError) as err:
        sys.exit(f"simulate.py: error: {err}")
    timings = manifest["timings"]
    print(
        f"wrote {len(manifest['configs'])} configurations to {args.output_dir}: "
        f"tau_alpha(NVE)={manifest['tau_alpha']}, "
        f"tau_alpha(NVT)={manifest['equilibration']['tau_alpha_nvt']:.4g}, "
        f"wall time {timings['total_s']:.0f} s"
    )


if __name__ == "__main__":
    main()
