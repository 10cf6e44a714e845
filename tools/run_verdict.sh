#!/usr/bin/env bash
# The fair grid with enough tuning (issue 18): tune every cell with 32 finished trials, re-tune
# the noise cells with tuner seeds 1 and 2, then run the tuned grid over the 5 seeds and train
# the noise study's choices. Two processes, one TensorFlow thread each.
#
#   tools/run_verdict.sh [OUT]          # run (or continue) everything; default OUT book/results/next
#   tools/run_verdict.sh [OUT] status   # where it is: finished trials per study, finished runs
#
# Every step is resumable (--resume): after an interruption, run the same command again; the
# finished trials and (seed, cell) runs are kept. Logs: OUT/verdict.log (this script) and
# OUT/{tune-a,tune-b,run,noise}.log (the workers).
set -u
OUT=${1:-book/results/next}
TRIALS=${TRIALS:-32}
PY=${PYTHON:-python}
NAME=fair-ml100k
# The two tuning workers: models split so that both take about as long (projected CPU cost
# per model from `python -m benchmarks.tuning_trial --cells all --epochs 3`).
MODELS_A=${MODELS_A:-"neumf melu_ids item_mean"}
MODELS_B=${MODELS_B:-"wide_deep melu mf"}
SCHEMES=${SCHEMES:-"finetune maml fomaml reptile metasgd melu np"}
# The tuning-noise study: its cells, and the models x schemes that give them to `tune`.
NOISE_MODELS=${NOISE_MODELS:-"melu item_mean"}
NOISE_SCHEMES=${NOISE_SCHEMES:-"finetune maml melu"}
NOISE_CELLS=${NOISE_CELLS:-"melu/finetune melu/maml melu/melu item_mean/finetune item_mean/maml"}
SEEDS=${SEEDS:-}  # empty: the benchmark's seeds (0..4)
SEED_ARGS=${SEEDS:+--seeds $SEEDS}

export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
mkdir -p "$OUT"

status() {
    "$PY" - "$OUT" "$NAME" "$TRIALS" "$MODELS_A $MODELS_B" "$SCHEMES" "$NOISE_CELLS" <<'EOF'
import sys
from metarec.experiments.grid import grid_cells
from metarec.experiments.tuning import study_progress
from metarec.experiments.grid_study import output_paths
from pathlib import Path
import pandas as pd
out, name, trials = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
models, schemes, noise = (a.split() for a in sys.argv[4:7])
planned = (len(grid_cells(models, schemes)) + 2 * len(noise)) * trials
table = study_progress(out, name)
if len(table):
    print(table.to_string(index=False))
    print(f"finished trials: {int(table['finished'].sum())} of {planned} planned "
          f"({len(grid_cells(models, schemes))} grid cells and {len(noise)} noise cells x "
          f"tuner seeds 1, 2; {trials} each)")
for label, folder, run in [("grid run", out, name)] + [
        (f"noise run, tuner {k}", out / f"{name}-noise", f"tuner{k}") for k in (0, 1, 2)]:
    path = output_paths(folder, run)["runs"]
    if path.exists():
        runs = pd.read_csv(path)
        print(f"{label}: {len(runs)} (seed, cell) runs finished, last {runs.iloc[-1]['cell']} "
              f"seed {runs.iloc[-1]['seed']}")
EOF
}

if [ "${2:-}" = "status" ]; then
    status
    exit 0
fi

step() {  # step LOG ARGS...: one resumable command of the chain, logged
    local log=$1
    shift
    echo "$(date '+%F %T') start: experiment $* (log $OUT/$log)"
    if "$PY" -m metarec experiment "$@" --out "$OUT" --threads 1 --resume >>"$OUT/$log" 2>&1; then
        echo "$(date '+%F %T') done:  experiment $*"
    else
        echo "$(date '+%F %T') FAILED: experiment $* (see $OUT/$log); rerun this script to resume"
        return 1
    fi
}

worker_a() {
    # shellcheck disable=SC2086
    step tune-a.log tune "$NAME" --trials "$TRIALS" --models $MODELS_A --schemes $SCHEMES &&
        step tune-a.log tune "$NAME" --trials "$TRIALS" --tuner-seed 1 \
            --models $NOISE_MODELS --schemes $NOISE_SCHEMES
}

worker_b() {
    # shellcheck disable=SC2086
    step tune-b.log tune "$NAME" --trials "$TRIALS" --models $MODELS_B --schemes $SCHEMES &&
        step tune-b.log tune "$NAME" --trials "$TRIALS" --tuner-seed 2 \
            --models $NOISE_MODELS --schemes $NOISE_SCHEMES
}

echo "$(date '+%F %T') verdict run: OUT=$OUT, $TRIALS trials per cell, pid $$"
start=$(date +%s)
worker_a & pid_a=$!
worker_b & pid_b=$!
wait $pid_a; rc_a=$?
wait $pid_b; rc_b=$?
if [ $rc_a -ne 0 ] || [ $rc_b -ne 0 ]; then
    echo "$(date '+%F %T') tuning stopped (worker a: $rc_a, worker b: $rc_b)"; exit 1
fi
# Every study is finished: this only rewrites the configs file from all studies.
# shellcheck disable=SC2086
step tune-a.log tune "$NAME" --trials "$TRIALS" --models $MODELS_A $MODELS_B --schemes $SCHEMES \
    || exit 1
tuned=$(date +%s)
echo "$(date '+%F %T') tuning done in $(( (tuned - start) / 60 )) min"
# shellcheck disable=SC2086
step run.log run "$NAME" $SEED_ARGS & pid_a=$!
# shellcheck disable=SC2086
step noise.log noise "$NAME" --cells $NOISE_CELLS $SEED_ARGS & pid_b=$!
wait $pid_a; rc_a=$?
wait $pid_b; rc_b=$?
if [ $rc_a -ne 0 ] || [ $rc_b -ne 0 ]; then
    echo "$(date '+%F %T') runs stopped (grid run: $rc_a, noise: $rc_b)"; exit 1
fi
end=$(date +%s)
echo "$(date '+%F %T') all done: tuning $(( (tuned - start) / 60 )) min, runs" \
     "$(( (end - tuned) / 60 )) min, total $(( (end - start) / 60 )) min"
status
