#!/usr/bin/env bash
# Before/after of moving fc and sentiment onto the one stack (branch fc-core), bounded runs on the
# shared 2-core CPU (nice -n 5, each step under 10 min). Output: /tmp/fcbench (not committed);
# summary: benchmarks/extra/tasks_move.md.
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
out=/tmp/fcbench; shared=/work/shared/data
mkdir -p "$out"

# BEFORE: the removed serac.tasks stack at commit d721618 (git archive d721618 serac | tar -x -C /tmp/fcbefore)
before() {  # python -c against the old library API (serac.tasks.api)
  PYTHONPATH=/tmp/fcbefore nice -n 5 timeout 600 python -c "import torch; torch.set_num_threads(1)
from pathlib import Path; from serac.tasks.api import build_task_data, train_task, eval_task
o=Path('$out'); s=Path('$shared'); $1"
}
before "build_task_data('sentiment', o/'sentiment-data', counterfact=s/'counterfact/counterfact-train.json', zsre=s/'zsre/zsre_mend_train-1k.json', n_topics=30)"
before "train_task('sentiment', o/'sentiment-art', o/'sentiment-data', epochs=1, scope_epochs=1, device='cpu')"
before "eval_task('sentiment', o/'sentiment-art', o/'sentiment-data', methods=['serac'], batch_sizes=(1, 5), out=o/'before-sentiment.json')"
before "train_task('fc', o/'fc-art', s/'vitaminc_sample', epochs=2, scope_epochs=1, device='cpu')"
before "eval_task('fc', o/'fc-art', s/'vitaminc_sample', methods=['serac'], batch_sizes=(1, 5, 25, 75), out=o/'before-fc.json')"
# the old fc artifact (fc_config.json) as an ordinary serac_config.json over the same three models
mkdir -p $out/fc-art-serac && for d in base counterfactual scope; do ln -sfn $out/fc-art/$d $out/fc-art-serac/$d; done
python -c "import json; from serac.config import *; o=json.load(open('$out/fc-art/fc_config.json'))
SeracConfig(base=BaseModelConfig(model='base', batch_size=32), scope=ScopeConfig(encoder='scope', threshold=o['threshold'],
 top_k=o['top_k'], conflicts='best'), counterfactual=CounterfactualConfig(model='counterfactual', batch_size=32)
).save('$out/fc-art-serac/serac_config.json')"

# AFTER: this branch's commands (same artifacts and data)
cd $out
S="nice -n 5 timeout 600 python -m serac.cli eval --no-cost --batch-size 8"
$S --task sentiment --data sentiment-data --artifact sentiment-art --methods serac --mode sequential --checkpoints 1,5,20 --out after-sentiment-seq
$S --task sentiment --data sentiment-data --artifact sentiment-art --methods serac --mode batch --batch-sizes 1,5 --out after4-sentiment-batch
$S --task fc --data $shared/vitaminc_sample --artifact fc-art-serac --methods serac --mode batch --batch-sizes 1,5,25,75 --out after-fc-batch
$S --task fc --data $shared/vitaminc_sample --artifact fc-art-serac --methods serac --mode sequential --checkpoints 1,5,25,75,100 --out after-fc-seq
$S --task fc --data $shared/vitaminc_sample --artifact fc-art-serac --methods serac,icl,ft,base --limit 75 --mode batch --batch-sizes 1,5,25,75 --out after-fc-batch75
# the sentiment artifact retrained by the new stack (serac.train.sentiment: serac train's scope training + calibration)
nice -n 5 timeout 600 python -c "import torch; torch.set_num_threads(1)
from serac.train.sentiment import SentimentTrainConfig, train_sentiment
train_sentiment('sentiment-data', 'sentiment-art-new', SentimentTrainConfig(epochs=1, device='cpu'))"
$S --task sentiment --data sentiment-data --artifact sentiment-art-new --methods serac --mode sequential --checkpoints 1,5,20 --out after2-sentiment-seq
$S --task sentiment --data sentiment-data --artifact sentiment-art-new --methods serac --mode batch --batch-sizes 1,5 --out after2-sentiment-batch
# a pair classifier trained elsewhere, plugged in with --counterfactual (fc-model's NLI-pretrained stage)
$S --task fc --data $shared/vitaminc_sample --artifact fc-art-serac --counterfactual /work/artifacts/fc_classifier/stage-pretrain --methods serac,icl --limit 75 --mode batch --batch-sizes 1,75 --out after-fc-plugged
