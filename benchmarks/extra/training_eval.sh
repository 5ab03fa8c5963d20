#!/usr/bin/env bash
# Reproduces benchmarks/extra/training.md: the default training run, the evaluation of the trained
# editor against the untrained defaults, and the report fragment. Run from the project root.
# Training reads only the training files; the evaluation files are read by `serac eval` alone.
set -euo pipefail
DATA=${SERAC_DATA:-../shared/data}
SAMPLE=${SAMPLE:-100}   # edits scored per task (and DD questions)
OUT=${OUT:-runs/training-eval}

serac train --no-progress   # -> $SERAC_HOME/trained (36 min measured on the 2-core machine, `serac bench` on the other core)

serac eval --task zsre --data "$DATA/zsre/zsre_mend_eval_portability_gpt4.json" \
    --methods serac,serac-untrained --checkpoints 1037 --sample "$SAMPLE" \
    --dd-data "$DATA/nq_open/NQ-open.dev.jsonl" --dd-sample "$SAMPLE" \
    --scoring generation --no-cost --apply-batch 100 --out "$OUT/zsre"

serac eval --task counterfact --data "$DATA/counterfact/counterfact-edit.json" --n-edits 1000 \
    --methods serac,serac-untrained --checkpoints 1000 --sample "$SAMPLE" \
    --scoring generation --no-cost --apply-batch 100 --out "$OUT/counterfact"

serac train-report --out benchmarks/extra --eval "$OUT/zsre/results.json" --eval "$OUT/counterfact/results.json"
