#!/usr/bin/env bash
# Issue 29 probe: two `train` commands on one run folder, and SIGTERM during training.
#   bash bench/robustness_lock_probe.sh SRC OUT
SRC=$1; OUT=$2; rm -rf "$OUT"; mkdir -p "$OUT"; cd "$OUT"
PY=/work/main/.venv-test/bin/python; D="env PYTHONPATH=$SRC $PY -m ddpmkit"
F="--preset toy2d --quiet --train.steps 1500 --train.checkpoint_every 500 --diffusion.num_steps 60 --train.log_every 50"
$D train --out L $F > /dev/null 2> first.err & p=$!
sleep 6
$D train --resume --out L $F > /dev/null 2> second.err; echo "second rc=$?"; tail -1 second.err | cut -c1-200
wait $p; echo "first rc=$?"
echo "log rows: $(tail -n +2 L/log.csv | wc -l), distinct steps: $(tail -n +2 L/log.csv | cut -d, -f1 | sort -u | wc -l)"
$D train --out T $F --train.steps 5000 > /dev/null 2> term.err & p=$!
sleep 8; kill -TERM $p; wait $p; echo "SIGTERM exit=$?"; ls T/checkpoints | tr '\n' ' '; echo; tail -1 term.err | cut -c1-200
