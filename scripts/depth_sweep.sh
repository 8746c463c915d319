#!/usr/bin/env bash
# The search for settings where Post-LN fails outright (docs/depth_study.md, "Where Post-LN
# fails"): scripts/depth_study.sh once per setting below, all three norms, each setting in its
# own OUT/<name>, on the grid's prepared data (the same batches as the grid); then one table of every setting × norm
# (scripts/depth_plots.py --sweep). Runs already finished are kept, so a rerun only redoes the
# table.
#
# Usage: scripts/depth_sweep.sh [--out DIR] [--only NAME]... [--jobs N]
#   --out   where the settings' folders go (default runs/depth-sweep)
#   --only  run only this setting (repeatable); the table still lists every finished one
#   --jobs  runs at a time (default 1: the sweep usually shares the machine with the grid)
#   --data  the prepared data (default runs/depth-study/data, prepared if missing)
# Environment: as scripts/depth_study.sh (DEEPNET, BUILD_DIR, PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."

# name | layers per stack | steps | settings on top of configs/depth-study.pbtxt
sweep=(
  "lr3e-3-warmup10|18|100|optimizer.lr=3e-3 lr_schedule.warmup_steps=10"
  "lr1e-2-warmup10|18|100|optimizer.lr=1e-2 lr_schedule.warmup_steps=10"
  "lr3e-3-warmup50|18|100|optimizer.lr=3e-3"
  "lr1e-3-warmup1-50L|50|100|lr_schedule.warmup_steps=1"
  "constant-lr1e-3-50L|50|100|lr_schedule.type=CONSTANT lr_schedule.warmup_steps=0"
  "constant-lr1e-3|18|100|lr_schedule.type=CONSTANT lr_schedule.warmup_steps=0"
)

out=runs/depth-sweep
jobs=1
data=runs/depth-study/data
only=()
while (($#)); do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift ;;
    --only) only+=("${2:?--only needs a setting name}"); shift ;;
    --jobs) jobs=${2:?--jobs needs a count}; shift ;;
    --data) data=${2:?--data needs a directory}; shift ;;
    *) echo "depth_sweep: unknown argument '$1' (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done

names=()
for entry in "${sweep[@]}"; do names+=("${entry%%|*}"); done
for name in "${only[@]}"; do
  [[ " ${names[*]} " == *" $name "* ]] || { echo "depth_sweep: no setting '$name'" >&2; exit 2; }
done
for entry in "${sweep[@]}"; do
  IFS='|' read -r name layers steps keys <<<"$entry"
  if ((${#only[@]})) && [[ " ${only[*]} " != *" $name "* ]]; then continue; fi
  sets=()
  for key in $keys; do sets+=(--set "$key"); done
  echo "depth_sweep: $name: $layers+$layers layers, $steps steps, $keys"
  scripts/depth_study.sh --out "$out/$name" --data "$data" --depths "$layers" \
    --steps "$steps" --jobs "$jobs" "${sets[@]}" || echo "depth_sweep: $name: outputs incomplete"
done

python=${PYTHON:-/usr/bin/python3}
[[ -x $python ]] || python=python3
"$python" scripts/depth_plots.py --sweep "$out" "${names[@]}"
