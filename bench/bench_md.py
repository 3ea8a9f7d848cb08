"""MD speed of the Kob-Andersen liquid in LAMMPS (the engine of simulate.py).

Prints MD steps per second (NVE, the production mode of simulate.py) for each
system size, with the machine's load average, since the CPU may be shared.

    python bench/bench_md.py --n_atoms 1000 4096 --threads 2
"""

from __future__ import annotations

import argparse
import os
import time

from glassgnn.lammps_driver import KASystem, lammps_version


def steps_per_second(n_atoms: int, threads: int, steps: int, temperature: float = 0.5) -> float:
    """Steps/s of NVE MD at ``temperature`` after minimisation and a short NVT run."""
    with KASystem(n_atoms, threads, 0.005, seed=7) as system:
        system.command(
            [
                "minimize 1.0e-6 1.0e-8 1000 10000",
                f"velocity all create {temperature} 11 dist gaussian mom yes rot no loop geom",
                f"fix t all nvt temp {temperature} {temperature} 0.5",
            ]
        )
        system.run(500)
        system.command(["unfix t", "fix e all nve"])
        system.run(100)  # neighbour lists and threads warmed up
        start = time.perf_counter()
        system.run(steps)
        return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n_atoms", type=int, nargs="+", default=[1000, 4096])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0, help="rough duration of each measurement")
    args = p.parse_args(argv)
    print(f"LAMMPS {lammps_version()}, OpenMP threads {args.threads}")
    for n in args.n_atoms:
        guess = steps_per_second(n, args.threads, 200)
        rate = steps_per_second(n, args.threads, max(200, int(guess * args.seconds)))
        load = os.getloadavg()[0]
        print(
            f"N={n:6d}: {rate:8.0f} MD steps/s ({rate * n / 1e6:.2f} M atom-steps/s), load average {load:.2f}"
        )


if __name__ == "__main__":
    main()
