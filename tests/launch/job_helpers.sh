# shellcheck shell=bash
# Helpers shared by the launch tests that drive whole `deepnet train` jobs and fault them
# (fault_matrix_test.sh, multinode/multinode_test.sh). Sourced; defines functions only.

# gone PID: true when the process no longer exists or is a zombie waiting to be reaped.
gone() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [[ -z $state || $state == Z || $state == X ]]
}

# now: seconds since the epoch, with nanoseconds (for fault-to-exit times).
now() { date +%s.%N; }

# prepare_small_data DEEPNET ROOT WORK [LINES]: tokenizer and shards of configs/tiny.pbtxt in
# WORK/data from the first LINES (default 2000) lines of the training corpus (a few seconds).
# Prints the log and returns 1 on failure.
prepare_small_data() {
  local deepnet=$1 root=$2 work=$3 lines=${4:-2000}
  (set +o pipefail; xz -dc "$root/data/train.tsv.xz" | head -n "$lines") > "$work/train.tsv"
  if [[ ! -s $work/train.tsv ]]; then
    echo "cannot read $root/data/train.tsv.xz"
    return 1
  fi
  if ! "$deepnet" prepare --config "$root/configs/tiny.pbtxt" --set "data.data_dir=\"$work/data\"" \
         --set "data.train_tsv=\"$work/train.tsv\"" --set "data.valid_tsv=\"$root/data/valid.tsv\"" \
         > "$work/prepare.txt" 2>&1; then
    cat "$work/prepare.txt"
    echo "deepnet prepare failed"
    return 1
  fi
}
