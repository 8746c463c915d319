#!/usr/bin/env bash
# The depth study: trains DeepNorm, Post-LN and Pre-LN encoder-decoders at several depths with the
# same data order, seed and optimizer (configs/depth-study.pbtxt), logs per-step loss, gradient
# norm and the model update ||F(x; theta_t) - F(x; theta_0)|| (train.update_norm_every), then
# writes the table and figures with scripts/depth_plots.py. docs/depth_study.md reads the result.
#
# After training, each finished run's final checkpoint is evaluated with `deepnet eval --beam 1`
# (validation loss and BLEU on the first --eval-limit validation pairs).
#
# Usage: scripts/depth_study.sh [--quick] [--out DIR] [--depths "6 18 50"] [--steps N] [--jobs N]
#          [--set KEY=VALUE]... [--data DIR] [--eval-limit N]
#   --quick    2+2 and 4+4 layers, 12 steps, small batches and vocabulary: checks that every output is produced
#              and finite (ctest depth_study_quick); says nothing about which norm wins.
#   --out      where everything goes (default runs/depth-study, runs/depth-study-quick with --quick)
#   --depths   layers per stack (encoder = decoder), deepest first is fastest to a verdict
#   --steps    optimizer steps per run (default 200)
#   --jobs     runs at a time, one thread each (default 2)
#   --set      a config setting for every run, forwarded to `deepnet train` (repeatable; e.g.
#              --set optimizer.lr=3e-3): give each setting its own --out
#   --data     the prepared tokenizer and shards (default OUT/data); settings that do not change
#              the data can share one
#   --eval-limit  validation pairs translated for BLEU (default 100; 0 = all 321)
#   --fresh    prepare the data and train every run again (otherwise the prepared data and every
#              run whose metrics are complete are kept, so an interrupted study continues)
# Environment: DEEPNET (the binary; default $BUILD_DIR/launcher/deepnet, BUILD_DIR=build, built
# if missing), PYTHON (default /usr/bin/python3: Debian's, which has python3-matplotlib).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
out=""
depths="50 18 6"
steps=200
jobs=2
fresh=0
eval_limit=100
user_settings=()
user_keys=()
data=""
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --fresh) fresh=1 ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    --depths) depths=${2:?--depths needs a list such as \"50 18 6\"}; shift ;;
    --steps) steps=${2:?--steps needs a count}; shift ;;
    --jobs) jobs=${2:?--jobs needs a count}; shift ;;
    --set)
      [[ ${2:-} == *=* ]] || { echo "depth_study: --set needs KEY=VALUE" >&2; exit 2; }
      user_settings+=(--set "$2"); user_keys+=("$2"); shift ;;
    --data) data=${2:?--data needs a directory}; shift ;;
    --eval-limit) eval_limit=${2:?--eval-limit needs a count}; shift ;;
    *) echo "depth_study: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
norms="DEEPNORM POSTLN PRELN"
config=configs/depth-study.pbtxt
settings=()  # what --quick changes; the same for every run
if ((quick)); then
  out=${out:-runs/depth-study-quick}
  depths="4 2"
  steps=12
  # A small vocabulary: the tokenizer, the output layer and the validation pass cost little.
  settings=(--set data.spm_vocab_size=1000 --set data.max_tokens_per_batch=512
    --set train.update_norm_every=3)
  eval_limit=8
fi
out=${out:-runs/depth-study}
for value in "$steps" "$jobs" $depths; do
  [[ $value =~ ^[1-9][0-9]*$ ]] || { echo "depth_study: '$value' is not a positive count" >&2; exit 2; }
done
[[ $eval_limit =~ ^[0-9]+$ ]] ||
  { echo "depth_study: --eval-limit '$eval_limit' is not a count" >&2; exit 2; }
[[ -n $depths ]] || { echo "depth_study: --depths is empty" >&2; exit 2; }

build_dir=${BUILD_DIR:-build}
deepnet=${DEEPNET:-$build_dir/launcher/deepnet}
if [[ ! -x $deepnet ]]; then
  [[ -f $build_dir/CMakeCache.txt ]] || cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$build_dir" --target deepnet
fi

data=${data:-$out/data}
((fresh)) && rm -rf "$data" "$out/metrics" "$out/logs" "$out/checkpoints" "$out/eval" \
  "$out/figures" "$out/summary.md" "$out/summary.json"
mkdir -p "$out/metrics" "$out/logs" "$out/eval"
# What this folder's runs changed from the config, for scripts/depth_plots.py --sweep.
echo "train.max_steps=$steps ${user_keys[*]}" >"$out/settings.txt"
# The user's settings override the config and the above; the per-run ones (norm, depth,
# paths) override them.
settings+=(--set "data.data_dir=$data" --set "train.max_steps=$steps"
  --set "train.valid_every=$steps" "${user_settings[@]}")
if [[ ! -f $data/valid.bin ]]; then
  echo "depth_study: preparing the tokenizer and shards in $data"
  nice -n 19 "$deepnet" prepare --config "$config" "${settings[@]}" >"$out/logs/prepare.log" 2>&1 ||
    { tail -5 "$out/logs/prepare.log" >&2; exit 1; }
fi

# One run: metrics to a temporary file, renamed when the run ends well. A run that fails (a
# diverging Post-LN stops after train.max_consecutive_skips non-finite steps) keeps its metrics
# and log as <name>.failed.jsonl: a failure to converge is a result, not an error of the study.
# A finished run saves one checkpoint, at its last step, which `deepnet eval` then reads.
train_one() {
  local layers=$1 norm=$2
  local name=$layers-$norm
  local metrics=$out/metrics/$name.jsonl
  local checkpoint=$out/checkpoints/$name
  if [[ -f $metrics ]]; then
    echo "depth_study: $name trained already"
  else
    rm -rf "$metrics.tmp" "$out/metrics/$name.failed.jsonl" "$checkpoint" "$out/eval/$name.txt"
    echo "depth_study: $name: $layers+$layers layers, $norm, $steps steps"
    if OMP_NUM_THREADS=1 nice -n 19 "$deepnet" train --config "$config" "${settings[@]}" \
      --set "model.encoder_layers=$layers" --set "model.decoder_layers=$layers" \
      --set "model.norm=$norm" --set "logging.json_metrics=$metrics.tmp" \
      --set "checkpoint.dir=$checkpoint" --set checkpoint.every_steps=0 \
      --set checkpoint.keep_last=1 --set checkpoint.restart=true \
      >"$out/logs/$name.log" 2>&1; then
      mv "$metrics.tmp" "$metrics"
    else
      mv "$metrics.tmp" "$out/metrics/$name.failed.jsonl" 2>/dev/null || true
      echo "depth_study: $name stopped early: $(grep -E '^(E|F)[0-9]|error' "$out/logs/$name.log" | tail -1)"
      return 0
    fi
  fi
  [[ -f $out/eval/$name.txt ]] && return 0
  [[ -d $checkpoint ]] || { echo "depth_study: $name has no checkpoint to evaluate"; return 0; }
  # Greedy: the study compares models, and beam search would multiply the decoding time.
  if OMP_NUM_THREADS=1 nice -n 19 "$deepnet" eval --checkpoint "$checkpoint" --beam 1 \
    --limit "$eval_limit" >"$out/eval/$name.txt.tmp" 2>"$out/logs/$name.eval.log"; then
    mv "$out/eval/$name.txt.tmp" "$out/eval/$name.txt"
  else
    echo "depth_study: $name: eval failed: $(tail -1 "$out/logs/$name.eval.log")"
  fi
}

start=$(date +%s)
for layers in $depths; do
  for norm in $norms; do
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
    train_one "$layers" "$norm" &
  done
done
wait
echo "depth_study: training took $(($(date +%s) - start)) s"

plot_args=()
((quick)) && plot_args=(--require-complete)
python=${PYTHON:-/usr/bin/python3}
[[ -x $python ]] || python=python3
"$python" scripts/depth_plots.py "$out" --depths $depths --norms $norms "${plot_args[@]}"
