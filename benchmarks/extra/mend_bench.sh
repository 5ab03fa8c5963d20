#!/usr/bin/env bash
# How mend's zsre-batch rows were measured (benchmarks/run.json names this script for them): `mend` on
# the standard bench parts (serac/eval/bench.py STANDARD_PARTS: the same edits, the same seeded scored
# samples and NQ-open drawdown questions, as prefixes), run with `serac eval`. Run from the project root after `serac train --method mend`
# (-> $SERAC_HOME/mend). The defaults are the bench's sizes; the environment variables shrink them
# (mend.md states what was run). Each part is its own process: PART=... runs one, so parts can run
# side by side. `serac bench --methods mend --parts P` measures the same at the bench's own sizes.
set -euo pipefail
DATA=${SERAC_DATA:-../shared/data}
OUT=${OUT:-benchmarks/extra/mend}
ZSRE="$DATA/zsre/zsre_mend_eval_portability_gpt4.json"
NQ="$DATA/nq_open/NQ-open.dev.jsonl"
BATCH_SIZES=${BATCH_SIZES:-1,5,25,75}        # zsre-batch k values (first 75 edits, 50 DD questions)
ZSRE_SAMPLE=${ZSRE_SAMPLE:-100}              # zsre-sequential: edits scored per N; DD questions
ZSRE_DD=${ZSRE_DD:-100}
CF_SAMPLE=${CF_SAMPLE:-50}                   # counterfact-sequential (mend capped at 1,000 edits)
CF_DD=${CF_DD:-100}
run_part() {
  case $1 in
    zsre-batch) serac eval --task zsre --data "$ZSRE" --mode batch --n-edits 75 --batch-sizes "$BATCH_SIZES" \
        --methods mend --dd-data "$NQ" --dd-sample 50 --out "$OUT/zsre-batch-k${BATCH_SIZES//,/-}" ;;
    zsre-sequential) serac eval --task zsre --data "$ZSRE" --mode sequential --checkpoints 10,100,1037 \
        --sample "$ZSRE_SAMPLE" --apply-batch 1 --methods mend --dd-data "$NQ" --dd-sample "$ZSRE_DD" \
        --out "$OUT/zsre-sequential" ;;
    counterfact-sequential) serac eval --task counterfact --data "$DATA/counterfact/counterfact-edit.json" \
        --mode sequential --n-edits 1000 --checkpoints 10,100,1000 --sample "$CF_SAMPLE" --apply-batch 10 \
        --methods mend --dd-data "$NQ" --dd-sample "$CF_DD" --out "$OUT/counterfact-sequential" ;;
    *) echo "unknown part $1" >&2; exit 2 ;;
  esac
}
for part in ${PART:-zsre-batch zsre-sequential counterfact-sequential}; do run_part "$part"; done
# the rows reach benchmarks/results.json through mend_to_bench.py and `serac bench --merge-from`; then:
# python benchmarks/extra/mend_report.py   (mend.md from the saved bench)
