#!/bin/bash
# Fault matrix (issue 14): how a 2-rank pipeline job ends when one rank fails.
#
#   fault_matrix_test.sh DEEPNET_BINARY REPO_ROOT [MPIEXEC]
#
# Each case starts `mpirun -np 2 deepnet train` (configs/tiny.pbtxt on a small slice of data/, two
# pipeline stages, parallel.comm_timeout_seconds=$FAULT_COMM_TIMEOUT, default 5), waits until it
# trains, then sends one signal to one rank, found by pid among mpirun's `deepnet` children:
#   kill-N  SIGKILL of rank N   every process gone, exit != 0 and != 75, mpirun or the survivor
#                               names rank N
#   stop-N  SIGSTOP of rank N   the survivor times out, prints an error naming rank N, and ends
#                               the job (MPI_Abort): exit 1, every process gone
#   term-N  SIGTERM of rank N   every rank stops after the same step with a checkpoint, exit 75;
#                               rank N says it received the signal
# Every case must end (mpirun exited, both ranks gone) within the timeout + 10 s of the fault; the
# time is measured from the signal to the moment the last of them is gone. A table of the cases
# (exit status, seconds, the message) is printed at the end; exit 0 when every case passed.
# FAULT_CASES="stop-1 term-0" runs a subset; FAULT_KEEP=1 keeps the work directory.
#
# Every case is bounded by `timeout`; whatever this script started is killed (by pid) on every
# exit path.
set -uo pipefail

if (( $# < 2 )); then
  echo "usage: $0 DEEPNET_BINARY REPO_ROOT [MPIEXEC]" >&2
  exit 2
fi
deepnet=$(readlink -f "$1")
root=$(readlink -f "$2")
mpiexec=${3:-mpirun}
comm_timeout=${FAULT_COMM_TIMEOUT:-5}
limit=$(( comm_timeout + 10 ))                        # seconds from the fault to the end
case_limit=$(( limit + 60 ))                          # `timeout` of one whole case, start-up included
cases=${FAULT_CASES:-kill-0 kill-1 stop-0 stop-1 term-0 term-1}

work=$(mktemp -d "${TMPDIR:-/tmp}/deepnet_fault_matrix.XXXXXX")
launcher_pid=  # `timeout`, parent of mpirun
mpirun_pid=
rank_pids=()

log() { echo "fault_matrix: $*"; }

# gone, now, prepare_small_data
# shellcheck source=tests/launch/job_helpers.sh
source "$root/tests/launch/job_helpers.sh"

kill_case() {
  local pid
  if [[ -n $launcher_pid && -z $mpirun_pid ]]; then
    mpirun_pid=$(pgrep -P "$launcher_pid" | head -n 1)
  fi
  if [[ -n $mpirun_pid && ${#rank_pids[@]} == 0 ]]; then
    mapfile -t rank_pids < <(pgrep -P "$mpirun_pid")
  fi
  for pid in "${rank_pids[@]}" $mpirun_pid $launcher_pid; do
    gone "$pid" || kill -KILL "$pid" 2>/dev/null
  done
  [[ -n $launcher_pid ]] && wait "$launcher_pid" 2>/dev/null
  launcher_pid='' mpirun_pid='' rank_pids=()
}

# shellcheck disable=SC2317  # run by the trap
cleanup() {
  kill_case
  if [[ ${FAULT_KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Small data, prepared once: the first 2000 lines of the training corpus (a few seconds).
if ! prepare_small_data "$deepnet" "$root" "$work"; then
  log "FAIL: preparing the data"
  exit 1
fi

results=()
failures=0

# run_case NAME: one job, one fault, the checks. Sets case_rc, case_seconds, case_message.
run_case() {
  local name=$1 signal rank out=$work/$1.txt ckpt=$work/$1-ckpt
  case ${name%-*} in
    kill) signal=KILL ;;
    stop) signal=STOP ;;
    term) signal=TERM ;;
    *) log "unknown case $name"; return 1 ;;
  esac
  rank=${name##*-}
  local survivor=$(( 1 - rank ))
  case_rc=- case_seconds=- case_message=-

  timeout -k 5 "$case_limit" "$mpiexec" -np 2 --allow-run-as-root --oversubscribe --bind-to none \
    -x OMP_NUM_THREADS=1 -x GLOG_logtostderr=1 \
    "$deepnet" train --config "$root/configs/tiny.pbtxt" \
    --set "data.data_dir=\"$work/data\"" --checkpoint_dir "$ckpt" --set train.max_steps=1000000 \
    --set train.valid_every=0 --set parallel.pipeline_stages=2 \
    --set "parallel.comm_timeout_seconds=$comm_timeout" \
    > "$out" 2>&1 &
  launcher_pid=$!

  # Training runs: rank 0 printed step 5 (start-up under load can take a while).
  local waited=0
  until grep -q '] step 5/' "$out" 2>/dev/null; do
    if gone "$launcher_pid" || (( waited >= 600 )); then
      tail -n 30 "$out"
      log "$name: FAIL: the job did not start training"
      kill_case
      return 1
    fi
    sleep 0.1
    waited=$(( waited + 1 ))
  done
  mpirun_pid=$(pgrep -P "$launcher_pid" | head -n 1)
  local pid victim='' r
  for pid in $(pgrep -P "$mpirun_pid" -x deepnet); do
    rank_pids+=("$pid")
    r=$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    [[ $r == "$rank" ]] && victim=$pid
  done
  if (( ${#rank_pids[@]} != 2 )) || [[ -z $victim ]]; then
    log "$name: FAIL: expected 2 deepnet children of mpirun ($mpirun_pid), found ${rank_pids[*]:-none}"
    kill_case
    return 1
  fi

  local start end
  start=$(now)
  kill "-$signal" "$victim"
  wait "$launcher_pid"
  case_rc=$?
  # mpirun has exited; its ranks may take a moment more to be gone.
  local left=1 i
  for (( i = 0; i < 200; ++i )); do
    left=0
    for pid in "${rank_pids[@]}"; do gone "$pid" || left=1; done
    (( left == 0 )) && break
    sleep 0.05
  done
  end=$(now)
  case_seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  local leftover=()
  for pid in "${rank_pids[@]}"; do gone "$pid" || leftover+=("$pid"); done
  launcher_pid='' mpirun_pid=''

  local problems=()
  (( ${#leftover[@]} > 0 )) && problems+=("deepnet processes left: ${leftover[*]}")
  rank_pids=("${leftover[@]}")  # killed by kill_case below, if any
  kill_case
  if awk -v s="$case_seconds" -v l="$limit" 'BEGIN { exit !(s > l) }'; then
    problems+=("ended after $case_seconds s (limit $limit s)")
  fi

  # The survivor's error: its own rank and host, then the failure, which names the victim.
  local named="deepnet train: error on world rank $survivor of 2 \(host [^)]*\): .*rank $rank\b"
  local line
  case $signal in
    KILL)
      (( case_rc == 0 || case_rc == 75 )) && problems+=("exit $case_rc, expected a failure")
      line=$(grep -m 1 -E "process rank $rank with PID .* exited on signal 9|$named" "$out")
      ;;
    STOP)
      (( case_rc == 1 )) || problems+=("exit $case_rc, expected 1 (MPI_Abort)")
      line=$(grep -m 1 -E "$named" "$out")
      ;;
    TERM)
      (( case_rc == 75 )) || problems+=("exit $case_rc, expected 75 (stopped for requeue)")
      line=$(grep -m 1 -E "world rank $rank \(host .*\) received signal 15" "$out")
      # Rank 0 announces the agreed step; the checkpoint of that step is complete and `latest`.
      # (Each rank prints "stopped for requeue" after MPI_Finalize; once the first has exited 75,
      # mpirun ends the others, whose line may be cut.)
      local step step_dir file
      step=$(sed -n 's/.*stop requested at step \([0-9]*\):.*/\1/p' "$out" | head -n 1)
      step_dir=$(printf 'step-%07d' "${step:-0}")
      if [[ -z $step ]]; then
        problems+=("rank 0 did not announce the stop")
      elif ! grep -q "stopped for requeue at step $step " "$out"; then
        problems+=("no \"stopped for requeue at step $step\"")
      elif [[ $(cat "$ckpt/latest" 2>/dev/null) != "$step_dir" ]]; then
        problems+=("$ckpt/latest is not $step_dir")
      else
        for file in state.json params-stage-0.safetensors params-stage-1.safetensors \
                    optimizer-stage-0.safetensors optimizer-stage-1.safetensors; do
          [[ -s $ckpt/$step_dir/$file ]] || problems+=("$step_dir/$file missing")
        done
      fi
      ;;
  esac
  if [[ -z $line ]]; then
    problems+=("no message naming rank $rank")
  else
    case_message=$(sed -E 's/^[IWE][0-9]{8} [0-9:.]+ +[0-9]+ [a-z_]+\.cc:[0-9]+\] //' <<< "$line" | cut -c 1-220)
  fi
  if (( ${#problems[@]} > 0 )); then
    log "$name: FAIL: $(IFS=';'; echo "${problems[*]}")"
    grep -v '] step [0-9]*/' "$out" | tail -n 40
    return 1
  fi
  log "$name: ok: exit $case_rc after $case_seconds s"
  return 0
}

log "comm_timeout_seconds=$comm_timeout, limit $limit s per case; work dir $work"
for name in $cases; do
  if run_case "$name"; then status=ok; else status=FAIL; failures=$(( failures + 1 )); fi
  results+=("$(printf '%-7s %-4s exit %-3s %5s s  %s' "$name" "$status" "$case_rc" "$case_seconds" "$case_message")")
done

echo
echo "fault matrix (2 ranks, tiny config, comm_timeout_seconds=$comm_timeout, limit $limit s):"
printf '  %s\n' "${results[@]}"
if (( failures > 0 )); then
  log "$failures case(s) failed"
  exit 1
fi
log "all cases passed"
exit 0
