#!/usr/bin/env bash
# `make demo`: the whole pipeline on the bundled data, in about 10 minutes on 2 CPU cores.
#   1. the pretrained DeepMind model (Bapst et al. 2020) on its bundled 4096-particle configuration;
#   2. graphs of the bundled Kob-Andersen set (datasets/ka_T0.64, made by simulate.py);
#   3. the MLP floor and the Bapst graph network trained on it (time-limited);
#   4. GNNExplainer + persistent homology on a few particles of the test configuration.
# Everything is written under outputs/demo (replaced on every run of the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${DEMO_OUT:-outputs/demo}
DATA=datasets/ka_T0.64
TRAIN_SECONDS=${DEMO_TRAIN_SECONDS:-240}
MLP_SECONDS=${DEMO_MLP_SECONDS:-45}
EXPLAIN_NODES=${DEMO_EXPLAIN_NODES:-2}
mkdir -p "$OUT"

echo "== 1/4 pretrained DeepMind model (T = 0.44, short-time propensity)"
$PY -c "from glassgnn.convert_deepmind import print_pretrained_summary; print_pretrained_summary()"

echo "== 2/4 graphs of $DATA (12 / 2 / 2 configurations, cutoff 2.0, propensity at time index 0)"
$PY construct_graph.py --train "$DATA"/config_000?.pickle "$DATA"/config_001[01].pickle \
    --val "$DATA"/config_001[23].pickle --test "$DATA"/config_001[45].pickle \
    --format bapst --cutoff 2.0 --time_index 0 --output_dir "$OUT/graphs" --overwrite

echo "== 3/4 training: MLP floor (${MLP_SECONDS} s), then the Bapst graph network (${TRAIN_SECONDS} s)"
for spec in "mlp:$MLP_SECONDS" "bapst:$TRAIN_SECONDS"; do
    model=${spec%%:*}
    seconds=${spec##*:}
    $PY train.py --model_name "$model" --dataset_dir "$OUT/graphs" --output_dir "$OUT/$model" \
        --max_time "$seconds" --max_epoch 100000 --eval_interval 1 --patience 1000 \
        --augment cubic --seed 0 --overwrite
done

echo "== 4/4 explaining $EXPLAIN_NODES particles of the test configuration with the Bapst model"
$PY explain.py --run_dir "$OUT/bapst" --split test --num_nodes "$EXPLAIN_NODES" --select center \
    --num_hops 2 --epochs 100 --output_dir "$OUT/explain" --seed 0 --overwrite

PYTHONPATH=. $PY scripts/demo_summary.py "$OUT"
