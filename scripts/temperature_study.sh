#!/usr/bin/env bash
# Temperature from structure (issue #10): can a graph-level model read T off one static
# Kob-Andersen configuration? Snapshots at 9 temperatures (datasets/ka_temperature, made
# by simulate.py --n_iso 0), one intermediate temperature held out for testing.
#
#   bash scripts/temperature_study.sh data    # regenerate datasets/ka_temperature (~5 min, 1 core)
#   bash scripts/temperature_study.sh study   # graphs, training, evaluation -> outputs/temperature
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=datasets/ka_temperature
TEMPERATURES=(0.56 0.64 0.72 0.80 0.90 1.00 1.20 1.50 2.00)
N_ATOMS=500
N_CONFIGS=12

data() {
    # One simulate.py run per temperature, each with its own seed (the index in the list),
    # so no two temperatures share an initial insertion. Snapshots only: no trajectories.
    local i=0
    for t in "${TEMPERATURES[@]}"; do
        i=$((i + 1))
        nice -n 15 $PY simulate.py --n_atoms $N_ATOMS --temperature "$t" --n_configs $N_CONFIGS \
            --n_iso 0 --threads 1 --seed $i --no_progress --output_dir "$DATA/T$t" --overwrite
    done
    data_manifest
}

data_manifest() {
    # DATA/manifest.json: one row per temperature, read from the runs' own manifests.
    $PY - "$DATA" <<'EOF_PY'
import json
import sys
from pathlib import Path

import numpy as np

from glassgnn.fileio import write_json

root = Path(sys.argv[1])
rows = []
for sub in sorted(root.glob("T*/manifest.json")):
    m = json.loads(sub.read_text())
    eq, pe = m["equilibration"], np.array(m["equilibration"]["config_pe"])
    rows.append({
        "directory": sub.parent.name, "temperature": m["parameters"]["temperature"],
        "seed": m["parameters"]["seed"], "n_configs": len(m["configs"]), "command": m["command"],
        "tau_alpha_nvt": eq["tau_alpha_nvt"], "equilibration_converged": eq["converged"],
        "equilibration_time": eq["equilibration_time"], "config_spacing_time": eq["config_spacing_time"],
        "pe_per_particle_mean": float(pe.mean()), "pe_per_particle_std": float(pe.std()),
        "pressure": m["metadata_pressure"], "wall_time_s": m["timings"]["total_s"],
    })  # fmt: skip
write_json(root / "manifest.json", {
    "what": "Kob-Andersen snapshots (no trajectories) at several temperatures, made by simulate.py --n_iso 0",
    "regenerate": "bash scripts/temperature_study.sh data",
    "n_atoms": m["parameters"]["n_atoms"], "lammps": m["versions"]["lammps"],
    "total_wall_time_s": sum(r["wall_time_s"] for r in rows), "temperatures": rows,
})  # fmt: skip
EOF_PY
}

case "${1:-}" in
    data) data ;;
    data_manifest) data_manifest ;;
    *)
        echo "usage: bash scripts/temperature_study.sh data|data_manifest|study" >&2
        exit 2
        ;;
esac
