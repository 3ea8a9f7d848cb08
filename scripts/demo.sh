#!/usr/bin/env bash
# `make demo`: the whole pipeline on the bundled data, in about 10 minutes on 2 CPU cores.
#   1. the pretrained DeepMind model (Bapst et al. 2020) on its bundled 4096-particle configuration;
#   2. graphs of the bundled Kob-Andersen set (datasets/ka_T0.64, made by simulate.py);
#   3. the MLP floor, the descriptor floor (ridge regression on structural descriptors) and the
#      Bapst graph network, all on the same split (settings: scripts/demo.conf.yaml);
#   4. GNNExplainer + persistent homology on a few particles of the test configuration;
#   5. a summary, printed and written to $OUT/summary.json.
# Everything is written under outputs/demo (replaced on every run of the demo).
# Budgets and choices are environment variables (tests/test_demo.py runs a cut-down demo):
#   DEMO_OUT             output directory (outputs/demo)
#   DEMO_NUM_TRAIN       training configurations (12: config_0000-0011; val 0012-13, test 0014-15)
#   DEMO_TIME_INDEX      propensity time index (0: t = 0.105, chosen on validation, see docs/benchmarks.md)
#   DEMO_CUTOFF          graph cutoff in sigma_AA (1.25: nearest neighbours, see docs/benchmarks.md)
#   DEMO_EPOCHS          Bapst epochs (60; 12 optimisation steps each)
#   DEMO_TRAIN_SECONDS   Bapst wall-time cap, checked at evaluations (600)
#   DEMO_MLP_EPOCHS      MLP epochs (10)
#   DEMO_EXPLAIN_NODES   particles explained (2)
#   DEMO_EXPLAIN_EPOCHS  GNNExplainer epochs per particle (100)
#   DEMO_THREADS         CPU threads per process (1: on a machine shared with other jobs one
#                        thread trained the Bapst network 4-5x faster than two, see docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${DEMO_OUT:-outputs/demo}
DATA=datasets/ka_T0.64
CONF=scripts/demo.conf.yaml
NUM_TRAIN=${DEMO_NUM_TRAIN:-12}
TIME_INDEX=${DEMO_TIME_INDEX:-0}
CUTOFF=${DEMO_CUTOFF:-1.25}
EPOCHS=${DEMO_EPOCHS:-60}
TRAIN_SECONDS=${DEMO_TRAIN_SECONDS:-600}
MLP_EPOCHS=${DEMO_MLP_EPOCHS:-10}
EXPLAIN_NODES=${DEMO_EXPLAIN_NODES:-2}
EXPLAIN_EPOCHS=${DEMO_EXPLAIN_EPOCHS:-100}
export OMP_NUM_THREADS=${DEMO_THREADS:-1}
if ! [[ $NUM_TRAIN =~ ^[0-9]+$ ]] || ((NUM_TRAIN < 1 || NUM_TRAIN > 12)); then
    echo "demo.sh: DEMO_NUM_TRAIN must be 1..12 (configurations 12-15 are val and test), got $NUM_TRAIN" >&2
    exit 2
fi
TRAIN_FILES=()
for ((i = 0; i < NUM_TRAIN; i++)); do TRAIN_FILES+=("$(printf '%s/config_%04d.pickle' "$DATA" "$i")"); done
mkdir -p "$OUT"

echo "== 1/5 pretrained DeepMind model (T = 0.44, short-time propensity)"
$PY -c "from glassgnn.deepmind_demo import print_pretrained_summary; print_pretrained_summary()"

echo "== 2/5 graphs of $DATA ($NUM_TRAIN / 2 / 2 configurations, cutoff $CUTOFF," \
    "propensity at time index $TIME_INDEX)"
$PY construct_graph.py --train "${TRAIN_FILES[@]}" \
    --val "$DATA"/config_001[23].pickle --test "$DATA"/config_001[45].pickle \
    --format bapst --cutoff "$CUTOFF" --time_index "$TIME_INDEX" --descriptors \
    --output_dir "$OUT/graphs" --overwrite

echo "== 3/5 training: MLP floor ($MLP_EPOCHS epochs), descriptor floor (ridge, closed form)," \
    "then the Bapst graph network ($EPOCHS epochs, at most $TRAIN_SECONDS s)"
for spec in "mlp:$MLP_EPOCHS:0" "ridge:1:0" "bapst:$EPOCHS:$TRAIN_SECONDS"; do
    IFS=: read -r model epochs seconds <<<"$spec"
    $PY train.py --model_config_path "$CONF" --model_name "$model" --dataset_dir "$OUT/graphs" \
        --output_dir "$OUT/$model" --max_epoch "$epochs" --max_time "$seconds" --overwrite
done

echo "== 4/5 explaining $EXPLAIN_NODES particle(s) of the test configuration with the Bapst model"
$PY explain.py --run_dir "$OUT/bapst" --split test --num_nodes "$EXPLAIN_NODES" --select center \
    --num_hops 2 --epochs "$EXPLAIN_EPOCHS" --threads "$OMP_NUM_THREADS" --output_dir "$OUT/explain" \
    --seed 0 --overwrite

echo "== 5/5 summary"
PYTHONPATH=. $PY scripts/demo_summary.py "$OUT"
