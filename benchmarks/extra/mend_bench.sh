#!/usr/bin/env bash
# How mend's zsre-batch rows were measured (benchmarks/run.json names this script for them): `mend` on
# the bench's zsre-batch part (serac/eval/bench.py STANDARD_PARTS: the same edits, the same seeded
# scored samples and NQ-open drawdown questions), run with `serac eval` after `serac train --method mend`
# (-> $SERAC_HOME/mend), from the project root. BATCH_SIZES=... runs a subset of the k values, so two
# processes can run side by side. The sequential parts' mend rows come from
# `serac bench --methods mend --parts P` itself.
set -euo pipefail
DATA=${SERAC_DATA:-../shared/data}
OUT=${OUT:-benchmarks/extra/mend}
ZSRE="$DATA/zsre/zsre_mend_eval_portability_gpt4.json"
NQ="$DATA/nq_open/NQ-open.dev.jsonl"
BATCH_SIZES=${BATCH_SIZES:-1,5,25,75}        # k values (first 75 edits, 50 DD questions)
serac eval --task zsre --data "$ZSRE" --mode batch --n-edits 75 --batch-sizes "$BATCH_SIZES" \
    --methods mend --dd-data "$NQ" --dd-sample 50 --out "$OUT/zsre-batch-k${BATCH_SIZES//,/-}"
# the rows reach benchmarks/results.json through mend_to_bench.py and `serac bench --merge-from`; then
# `python benchmarks/extra/mend_report.py` rewrites mend.md from the saved bench.
