"""Print the outcome of `make demo`: MLP floor vs Bapst network, and the explanation summary.

Usage: python scripts/demo_summary.py OUTPUT_DIR (the directory scripts/demo.sh wrote).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from glassgnn.evaluation import headline_of


def main(argv: list[str] | None = None) -> None:
    out = Path((argv or sys.argv[1:])[0])
    print("\n== demo results (Pearson over type-A particles, propensity; selection on val only)")
    print(
        "   (the MLP sees only the particle type, so on type A alone it is constant: Pearson nan = no skill)"
    )
    for model in ("mlp", "bapst"):
        results = json.loads((out / model / "results.json").read_text())
        metrics = results["metrics"]
        print(
            f"{model:>6}: val {headline_of(metrics['val'], 'pearson'):.3f}  "
            f"test {headline_of(metrics['test'], 'pearson'):.3f}  "
            f"(epoch {results['best_epoch']} of {results['last_epoch']}, "
            f"{results['wall_time_s']:.0f} s, {results['num_parameters']} parameters)"
        )
    summary = json.loads((out / "explain" / "summary.json").read_text())
    print(f"\nexplanations: {out / 'explain'} (summary.json, particles.csv, figures)")
    cycles = summary["participation"]["cycle_count"]
    for tier, stats in cycles["tiers"].items():
        print(f"  {tier:>6} bonds: {stats['mean']:.2f} H1 cycles per bond (n = {stats['count']})")
    test = cycles["mann_whitney_top_vs_bottom"]
    print(f"  top vs bottom: Mann-Whitney U {test['U']:.1f}, p = {test['p_value']:.3g}")
    print(f"runs: {out / 'mlp'}, {out / 'bapst'} (results.json, metrics.csv, figures)")


if __name__ == "__main__":
    main()
