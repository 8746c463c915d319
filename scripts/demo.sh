#!/usr/bin/env bash
# The demo: builds deepnet, prepares the bundled English -> Spanish Bible corpus, trains a small
# DeepNet (configs/demo.pbtxt: 6+6 DeepNorm layers, d_model 256) on the CPU, then prints the
# validation loss and BLEU (200 validation verses, beam 4) and five sample translations.
# About 15 minutes on 2 cores. Everything goes under runs/demo/; run ./scripts/setup.sh first.
# Usage: scripts/demo.sh   (BUILD_DIR overrides the build directory, JOBS the build parallelism,
#                          DEMO_RESUME=1 continues an interrupted run from its last checkpoint)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
config=configs/demo.pbtxt
checkpoints=runs/demo/checkpoints
# One rank on every core: the default (spinning) OpenMP wait policy is 5-9 % faster per step than
# passive here. Multi-rank launches (launcher/) default to passive, where ranks share cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

start=$(date +%s)
phase_start=$start
phase() {  # prints the time the previous phase took, then the new phase's name
  local now
  now=$(date +%s)
  [[ $# -gt 1 ]] && echo "demo: $2 took $((now - phase_start)) s"
  phase_start=$now
  echo
  echo "=== demo: $1"
}

phase "build ($build_dir, deepnet only)"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build_dir" --target deepnet -j "$jobs"
deepnet=$build_dir/launcher/deepnet

phase "prepare: SentencePiece tokenizer and token shards (runs/demo/data)" build
if [[ ${DEMO_RESUME:-0} == 1 && -f runs/demo/data/train.bin ]]; then
  echo "demo: resuming: keeping the prepared data"  # the checkpoints' vocabulary
else
  "$deepnet" prepare --config "$config"
fi

phase "train: $(grep -m1 -E '^ *max_steps:' "$config" | tr -s ' ') on $OMP_NUM_THREADS threads" prepare
# A fresh run each time (earlier checkpoints are replaced), unless DEMO_RESUME=1 continues one.
resume=()
if [[ ${DEMO_RESUME:-0} == 1 ]]; then
  resume=(--resume)
else
  rm -rf "$checkpoints" runs/demo/metrics.jsonl
fi
status=0
"$deepnet" train --config "$config" "${resume[@]}" || status=$?
if ((status == 75)); then  # SIGTERM / SIGUSR1: a checkpoint was saved at the end of the step
  echo "demo: training was asked to stop; continue it with DEMO_RESUME=1 $0" >&2
  exit 75
elif ((status != 0)); then
  exit "$status"
fi

phase "evaluate: validation loss, BLEU of 200 validation verses (beam 4), samples" train
# --no_repeat_ngram 3: a translation never repeats a 3-gram, which stops a small model's loops.
"$deepnet" eval --checkpoint "$checkpoints" --limit 200 --beam 4 --no_repeat_ngram 3 --samples 5

phase "done" evaluation
echo "demo: total $(($(date +%s) - start)) s; checkpoint in $checkpoints," \
  "metrics in runs/demo/metrics.jsonl"
echo "demo: translate your own sentences with"
echo "  echo 'And God saw the light.' | $deepnet translate --checkpoint $checkpoints"
