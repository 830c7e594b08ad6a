#!/usr/bin/env bash
# One run on a lent GPU machine (results/sentiment/gpu-h200-bootstrap): the sentiment bootstrap recipe at the
# gpu preset's model size, bounded by a wall-clock timeout (TRAIN_S, default 390 s); then the Yelp test
# transferred by the best dev checkpoint, written to $OUT and scored back on the CPU machine with
#   textgan evaluate --task sentiment --outputs NAME:neg2pos=neg2pos.txt pos2neg=pos2neg.txt
# The machine has no network: .gpu/ (git-ignored, carried) holds the Python 3.12 wheels it lacks (datasets,
# dill, multiprocess, nltk, defusedxml) in .gpu/whl and the Yelp train/dev/test files in .gpu/corpora/yelp.
# Run from the repository root: bash scripts/device_sentiment_gpu.sh
set -x
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD TEXTGAN_CACHE=/tmp/tgcache HF_DATASETS_DISABLE_PROGRESS_BARS=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -c "import pyarrow, datasets, nltk, transformers, torch, accelerate, sklearn; print('pyarrow', pyarrow.__version__, 'datasets', datasets.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__, torch.cuda.get_device_name(0))" 2>&1 | tee $OUT/env.txt
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> $OUT/env.txt
nproc >> $OUT/env.txt
timeout ${TRAIN_S:-390} python3 -m textgan train --task sentiment --preset gpu --name gpu-h200 --runs-dir /tmp/runs --data-dir .gpu/corpora \
  train.bootstrap=template train.ae_steps=1500 train.bootstrap_steps=3000 train.bootstrap_self=0.0 train.d_steps=200 \
  train.adv_steps=3000 train.eval_every=100 train.ae_eval_every=500 train.eval_lines=500 train.ckpt_every=250 \
  train.lambda_adv=0.5 train.lambda_self=0.5 train.lambda_pairs=0.5 train.style_reward=3.0 train.cycle_reward=3.0 \
  train.reward_mix=harmonic train.style_steps=300 train.pairs_min_style=0.5 > $OUT/train.log 2>&1
echo "train exit $? after $(( $(date +%s) - T0 )) s" >> $OUT/train.log
RUN=/tmp/runs/sentiment/gpu-h200
python3 - <<PY >> $OUT/train.log 2>&1
import textgan
from pathlib import Path
m = textgan.load("$RUN")
for src, tgt in (("neg", "pos"), ("pos", "neg")):
    lines = Path(".gpu/corpora/yelp/test." + src).read_text().splitlines()
    out = m.transfer(lines, to=tgt, tokenized=True, normalized=True)
    Path("$OUT/" + src + "2" + tgt + ".txt").write_text("".join(x + "\n" for x in out))
print("test transferred")
PY
tar czf $OUT/run.tgz -C /tmp/runs/sentiment gpu-h200/config.yaml gpu-h200/run.json gpu-h200/best.json gpu-h200/metrics.jsonl gpu-h200/pairs/kept.json gpu-h200/pairs/mining.json gpu-h200/training_curves.png 2>>$OUT/train.log
echo "all done after $(( $(date +%s) - T0 )) s" >> $OUT/train.log
