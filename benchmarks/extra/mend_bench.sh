#!/usr/bin/env bash
# Reproduces benchmarks/extra/mend.md: `mend` on the three standard bench parts (serac/eval/bench.py
# STANDARD_PARTS: the same edits, the same scored samples, the same NQ-open drawdown questions), run
# with `serac eval`, then the comparison with the rows of benchmarks/results.json. Run from the
# project root after `serac train --method mend` (-> $SERAC_HOME/mend). PARTS picks a subset; the
# parts are independent processes, so two can run side by side on two cores.
set -euo pipefail
DATA=${SERAC_DATA:-../shared/data}
OUT=${OUT:-benchmarks/extra/mend}
PARTS=${PARTS:-"zsre-batch zsre-sequential counterfact-sequential"}
ZSRE="$DATA/zsre/zsre_mend_eval_portability_gpt4.json"
NQ="$DATA/nq_open/NQ-open.dev.jsonl"
for part in $PARTS; do
  case $part in
    zsre-batch) serac eval --task zsre --data "$ZSRE" --mode batch --n-edits 75 --batch-sizes 1,5,25,75 \
        --methods mend --dd-data "$NQ" --dd-sample 50 --out "$OUT/$part" ;;
    zsre-sequential) serac eval --task zsre --data "$ZSRE" --mode sequential --checkpoints 10,100,1037 \
        --sample 100 --apply-batch 1 --methods mend --dd-data "$NQ" --dd-sample 100 --out "$OUT/$part" ;;
    counterfact-sequential) serac eval --task counterfact --data "$DATA/counterfact/counterfact-edit.json" \
        --mode sequential --n-edits 1000 --checkpoints 10,100,1000 --sample 50 --apply-batch 10 \
        --methods mend --dd-data "$NQ" --dd-sample 100 --out "$OUT/$part" ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
python benchmarks/extra/mend_report.py "$OUT" benchmarks/results.json benchmarks/extra/mend.md
