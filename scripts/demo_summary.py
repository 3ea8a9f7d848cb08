"""Print and write the outcome of `make demo`: the Bapst network against the MLP floor and the
descriptor floor (ridge regression on structural descriptors), and the explanations.

Usage: python scripts/demo_summary.py OUTPUT_DIR (the directory scripts/demo.sh wrote).
Writes OUTPUT_DIR/summary.json with the printed numbers (JSON null where a Pearson is undefined).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from glassgnn import outputs
from glassgnn.evaluation import headline_of
from glassgnn.fileio import write_json
from glassgnn.manifest import Manifest

MODELS = ("mlp", "ridge", "bapst")
FLOOR_REASON = (
    "the MLP sees only the particle type, so on the type-A particles of the metrics it predicts "
    "one constant: its Pearson is undefined (nan), which means no skill, counted as 0"
)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def run_summary(run_dir: Path) -> dict:
    """Validation-selected epoch and the val/test Pearson of one train.py run directory."""
    results = json.loads((run_dir / outputs.RESULTS).read_text())
    metrics = results["metrics"]
    return {
        "val_pearson": _finite_or_none(headline_of(metrics["val"], "pearson")),
        "test_pearson": _finite_or_none(headline_of(metrics["test"], "pearson")),
        "selected_epoch": results["best_epoch"],
        "last_epoch": results["last_epoch"],
        "selection": results["selection"]["split"],
        "stop_reason": results["stop_reason"],
        "wall_time_s": results["wall_time_s"],
        "num_parameters": results["num_parameters"],
    }


def target_description(graphs_dir: Path) -> dict:
    """The learned target: time index, and the time and tau_alpha when the data set's manifest has them."""
    manifest = Manifest.load(graphs_dir / "manifest.json")
    index = manifest.graph["time_index"]
    described = {"target_names": manifest.target_names, "time_index": index}
    source = Path(manifest.splits["train"]["graphs"][0]["source"]).parent / "manifest.json"
    if index is not None and source.is_file():  # a data set made by simulate.py
        data = json.loads(source.read_text())
        described |= {"time": data["time"][data["time_indices"][index]], "tau_alpha": data["tau_alpha"]}
    return described


def summarise(out: Path) -> dict:
    """Everything the demo printed, as one dict (also written to ``out/summary.json``)."""
    runs = {model: run_summary(out / model) for model in MODELS}
    mlp_val = runs["mlp"]["val_pearson"]
    floor = 0.0 if mlp_val is None else mlp_val
    explain = json.loads((out / "explain" / "summary.json").read_text())
    cycles = explain["participation"]["cycle_count"]
    return {
        "target": target_description(out / "graphs"),
        "metric": "Pearson over type-A particles, checkpoint selected on val, test evaluated once",
        "runs": runs,
        "floor": {"val_pearson": floor, "reason": FLOOR_REASON if mlp_val is None else "MLP val Pearson"},
        "bapst_minus_floor_val": (runs["bapst"]["val_pearson"] or 0.0) - floor,
        "bapst_minus_descriptor_floor_val": (runs["bapst"]["val_pearson"] or 0.0)
        - (runs["ridge"]["val_pearson"] or 0.0),
        "explain": {
            "dir": str(out / "explain"),
            "num_particles": explain["num_particles"],
            "tiers": cycles["tiers"],
            "mann_whitney_top_vs_bottom": cycles["mann_whitney_top_vs_bottom"],
        },
        "load_average_1min": os.getloadavg()[0],
    }


def _fmt(value: float | None) -> str:
    return "  nan" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> None:
    out = Path((argv or sys.argv[1:])[0])
    summary = summarise(out)
    write_json(out / "summary.json", summary)
    target = summary["target"]
    when = f", t = {target['time']:.3g} (tau_alpha {target['tau_alpha']:.3g})" if "time" in target else ""
    print(f"\n== demo results: propensity at time index {target['time_index']}{when}")
    print(f"   {summary['metric']}")
    for model, run in summary["runs"].items():
        print(
            f"{model:>6}: val {_fmt(run['val_pearson'])}  test {_fmt(run['test_pearson'])}  "
            f"(epoch {run['selected_epoch']} of {run['last_epoch']} selected on val, "
            f"{run['wall_time_s']:.0f} s, {run['num_parameters']} parameters)"
        )
    floor = summary["floor"]
    print(f" floor: val {floor['val_pearson']:.3f} ({floor['reason']})")
    print(f"bapst - floor (val): {summary['bapst_minus_floor_val']:+.3f}")
    print(
        f"bapst - descriptor floor (val): {summary['bapst_minus_descriptor_floor_val']:+.3f} "
        "(ridge on structural descriptors, the same split)"
    )
    explain = summary["explain"]
    print(
        f"\nexplanations of {explain['num_particles']} particle(s): {explain['dir']} "
        "(summary.json, particles.csv, figures)"
    )
    for tier, stats in explain["tiers"].items():
        print(f"  {tier:>6} bonds: {stats['mean']:.2f} H1 cycles per bond (n = {stats['count']})")
    test = explain["mann_whitney_top_vs_bottom"]
    print(f"  top vs bottom: Mann-Whitney U {test['U']:.1f}, p = {test['p_value']:.3g}")
    print(f"runs: {out / 'mlp'}, {out / 'ridge'}, {out / 'bapst'} (results.json, metrics.csv, figures)")
    print(f"summary: {out / 'summary.json'} (load average {summary['load_average_1min']:.1f})")


if __name__ == "__main__":
    main()
