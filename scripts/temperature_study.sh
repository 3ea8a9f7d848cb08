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

# --- study -------------------------------------------------------------------------------
OUT=${TEMPERATURE_OUT:-outputs/temperature}
HELD_OUT=0.80                          # interpolation: tested, never trained or validated on
CGCNN_EPOCHS=${TEMPERATURE_EPOCHS:-60} # a fixed epoch budget, not a time limit: reproducible under load

study() {
    mkdir -p "$OUT"
    # Split per training temperature: configurations 0-7 train, 8-9 validation (model
    # selection), 10-11 test; every configuration of the held-out temperature is test.
    local train=() val=() test=()
    for t in "${TEMPERATURES[@]}"; do
        if [ "$t" = "$HELD_OUT" ]; then
            test+=("$DATA/T$t"/config_00??.pickle)
        else
            train+=("$DATA/T$t"/config_000[0-7].pickle)
            val+=("$DATA/T$t"/config_000[89].pickle)
            test+=("$DATA/T$t"/config_001[01].pickle)
        fi
    done
    # Cutoff 1.5 sigma: the first coordination shell (first minimum of g_AA(r) near 1.4).
    $PY construct_graph.py --train "${train[@]}" --val "${val[@]}" --test "${test[@]}" \
        --format bapst --cutoff 1.5 --graph_target temperature --output_dir "$OUT/graphs" --overwrite

    # Study settings: CGCNN's Gaussians rescaled to LJ units (0-1.5 sigma, step and width 0.1).
    cat >"$OUT/temperature.conf.yaml" <<'EOF_YAML'
global:
  seed: 0
  learning_rate: 0.001
  batch_size: 16
  scheduler: cosine
  eval_interval: 2
  patience: 1000
  selection_metric: mae
  readout: {op: mean}
mlp:
  hidden_dims: [64, 64]
cgcnn:
  atom_fea_len: 32
  n_conv: 2
  h_fea_len: 64
  n_h: 1
  rbf_min: 0.0
  rbf_max: 1.5
  rbf_step: 0.1
  rbf_width: 0.1
  pooling: mean
EOF_YAML
    # The floor: a per-particle MLP on the particle type, mean over the snapshot (no message
    # passing). Every snapshot has the same composition, so it predicts one constant: one seed.
    nice -n 15 $PY train.py --model_config_path "$OUT/temperature.conf.yaml" --model_name mlp \
        --dataset_dir "$OUT/graphs" --output_dir "$OUT/mlp" --max_epoch 20 --overwrite
    # CGCNN with mean pooling, seeds 0, 1, 2 (runs in cgcnn/seed_<s>).
    nice -n 15 $PY train.py --model_config_path "$OUT/temperature.conf.yaml" --model_name cgcnn \
        --dataset_dir "$OUT/graphs" --output_dir "$OUT/cgcnn" --max_epoch "$CGCNN_EPOCHS" --num_exp 3 --overwrite
    evaluate
}

evaluate() {
    # Test metrics by group: the held-out temperature, the unseen configurations of the
    # training temperatures, and the whole test split (R^2 needs more than one temperature).
    # Reference: T from the potential energy per particle (a static-configuration quantity,
    # from the simulation manifests), cubic fit on the training configurations.
    $PY - "$OUT" "$DATA" "$HELD_OUT" <<'EOF_PY'
import json
import sys
from pathlib import Path

import numpy as np

from glassgnn.fileio import write_json

out, data, held_out = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])


def metrics(pred, target):
    err = pred - target
    return {
        "count": len(target), "mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())),
        # undefined at a single temperature (no variance to explain)
        "r2": float(1 - (err**2).mean() / np.var(target)) if np.ptp(target) > 0 else None,
        "mean_pred": float(pred.mean()), "std_pred": float(pred.std()),
    }  # fmt: skip


def groups(pred, target):
    held = np.isclose(target, held_out)
    return {
        f"held_out_T{held_out:.2f}": metrics(pred[held], target[held]),
        "training_temperatures": metrics(pred[~held], target[~held]),
        "test_split": metrics(pred, target),
    }


summary = {}
for name, runs in (("mlp", [out / "mlp"]), ("cgcnn", sorted((out / "cgcnn").glob("seed_*")))):
    for path in runs:
        run = path.relative_to(out).as_posix()
        with np.load(path / "predictions_test.npz") as p:
            summary[run] = groups(p["pred"][:, 0].astype(np.float64), p["target"][:, 0].astype(np.float64))
    seeds = [summary[k] for k in summary if k.startswith(f"{name}/seed_")]
    if seeds:  # mean and std over seeds of every metric
        summary[f"{name} (mean, std over {len(seeds)} seeds)"] = {
            group: {
                key: None if seeds[0][group][key] is None else
                [float(np.mean([s[group][key] for s in seeds])), float(np.std([s[group][key] for s in seeds]))]
                for key in ("mae", "r2")
            }
            for group in seeds[0]
        }  # fmt: skip

manifest = json.loads((out / "graphs" / "manifest.json").read_text())


def energies(split):
    pe, temperature = [], []
    for graph in manifest["splits"][split]["graphs"]:
        source = Path(graph["source"])
        run = json.loads((source.parent / "manifest.json").read_text())
        pe.append(run["equilibration"]["config_pe"][int(source.stem.split("_")[1])])
        temperature.append(run["parameters"]["temperature"])
    return np.array(pe), np.array(temperature)


fit = np.polyfit(*energies("train"), deg=3)
pe, temperature = energies("test")
summary["potential_energy_cubic_fit"] = groups(np.polyval(fit, pe), temperature)
write_json(out / "summary.json", summary)
for name, rows in summary.items():
    for group, m in rows.items():
        if "count" not in m:  # mean and std over seeds
            r2 = "  -  " if m["r2"] is None else f"{m['r2'][0]:.3f} +- {m['r2'][1]:.3f}"
            print(f"{name:36s} {group:24s} R2={r2} MAE={m['mae'][0]:.4f} +- {m['mae'][1]:.4f}")
            continue
        r2 = "  -  " if m["r2"] is None else f"{m['r2']:.3f}"
        print(f"{name:36s} {group:24s} n={m['count']:3d} R2={r2} MAE={m['mae']:.4f} "
              f"pred={m['mean_pred']:.3f}+-{m['std_pred']:.3f}")  # fmt: skip
EOF_PY
}

case "${1:-}" in
    data) data ;;
    data_manifest) data_manifest ;;
    study) study ;;
    evaluate) evaluate ;;
    *)
        echo "usage: bash scripts/temperature_study.sh data|study|evaluate|data_manifest" >&2
        exit 2
        ;;
esac
