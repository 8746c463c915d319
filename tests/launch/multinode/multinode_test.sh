#!/bin/bash
# Multi-node jobs on a cluster of network namespaces (netns_cluster.sh): deepnet launched by
# launcher/mpirun/multinode.sh with a hostfile of the nodes' addresses, Open MPI's daemons started
# in the nodes by netns_rsh_agent.sh, every byte between ranks over TCP across the veths
# (btl tcp,self; interfaces 198.18.0.0/15).
#
#   multinode_test.sh DEEPNET_BINARY REPO_ROOT CASE
#
#   data      prepare the tiny corpus into $MULTINODE_DATA (the other cases' ctest fixture)
#   pipeline  3 stages on 3 nodes: parameters after the steps bit-identical to one process; the
#             grid shows node0..node2 and the veths carried the traffic; prints the step time
#             across nodes and of the same 3 ranks on one node (MULTINODE_STEPS, default 8)
#   dp_pp     2 replicas x 2 stages on 2 nodes of 2 slots: bit-identical to the same grid on one
#             node (mpirun -np 4)
#   cut_link  MULTINODE_TRIALS (default 5) jobs of 3 stages on 3 nodes, each cut mid-step by
#   cut_kill  taking a node's link down / by kill -9 of every process of the node (node 1 and 2
#             in turn): mpirun exits non-zero and every process of every node is gone within
#             parallel.comm_timeout_seconds + 10 s of the cut, and a message names the lost rank
#             and its node; after a link cut, every surviving rank's own error names the lost rank
#             and its host (deepnet notices first: comm timeout 3 s, MPI_NODE_TIMEOUT 20 s); a
#             killed node's daemon is seen gone at once and Open MPI ends the job itself. Prints
#             the exit times (min/median/max)
#   stop      MULTINODE_TRIALS jobs whose rank on node 1 or 2 is stopped (SIGSTOP; its node stays
#             up, so only deepnet's own deadline notices): a survivor names the rank and its host
#             ("rank 1 (world rank 1, host node1)") and ends the job, exit 1, within the limit
#   pipeline_1000l  configs/deepnet-1000L.pbtxt (500+500 layers) as 3 stages on 3 nodes for 2
#             steps (2 micro-batches of 128 tokens, the tiny corpus): bit-identical to one process
#             (58 M parameters). About 3 minutes on 2 cores, so not in ctest
#   resume    a job cut (kill -9 of node 2) after a few checkpoints, run again with --resume on
#             the same nodes: it resumes from the last checkpoint and its parameters equal an
#             uncut run's bit for bit
#
# Exit 0 pass, 1 fail, 77 skip (no network namespaces here: not root, no `ip`/`unshare`).
# The cluster (namespaces, bridge, every process in them) is removed on every exit path.
# MULTINODE_KEEP=1 keeps the work directory.
set -uo pipefail

if (( $# != 3 )); then
  echo "usage: $0 DEEPNET_BINARY REPO_ROOT CASE" >&2
  exit 2
fi
deepnet=$(readlink -f "$1")
root=$(readlink -f "$2")
case_name=$3
here=$root/tests/launch/multinode
comm_timeout=${MULTINODE_COMM_TIMEOUT:-3}  # the survivors' deadline (their own message)
limit=$(( comm_timeout + 10 ))              # seconds from the cut until everything is gone
job_limit=240                               # `timeout` of one job, start-up included
config=$root/configs/tiny.pbtxt             # of every job

# shellcheck source=tests/launch/job_helpers.sh
source "$root/tests/launch/job_helpers.sh"
# shellcheck source=tests/launch/multinode/netns_cluster.sh
source "$here/netns_cluster.sh"

log() { echo "multinode[$case_name]: $*"; }
fail() { log "FAIL: $*"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/deepnet_multinode.XXXXXX")
CLUSTER_DIR=$work
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  cluster_down
  if [[ ${MULTINODE_KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

data=${MULTINODE_DATA:-$work/shared-data}
if [[ $case_name == data || ! -f $data/ready ]]; then
  mkdir -p "$data"
  rm -f "$data/ready"
  prepare_small_data "$deepnet" "$root" "$data" || fail "preparing the data"
  touch "$data/ready"
  [[ $case_name == data ]] && { log "prepared $data/data"; exit 0; }
fi

# How every job reaches the nodes (multinode.sh's settings; Open MPI reads OMPI_MCA_*).
export OMPI_MCA_plm_rsh_agent=$here/netns_rsh_agent.sh OMPI_MCA_btl=tcp,self
export MPI_IFACE=$CLUSTER_SUBNET MPI_BIND=none MPI_NODE_TIMEOUT=${MULTINODE_NODE_TIMEOUT:-20}
export DEEPNET_BIN=$deepnet OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive GLOG_logtostderr=1

# The arguments of every run: tiny model on the prepared data, no validation, metrics per step.
train_args() {  # train_args DIR: checkpoints in DIR/ckpt, metrics in DIR/metrics.jsonl
  echo --set "data.data_dir=\"$data/data\"" --checkpoint_dir "$1/ckpt" --set train.valid_every=0 \
       --set "logging.json_metrics=\"$1/metrics.jsonl\"" --set logging.log_every=1
}

# run_multinode DIR NP ARGS...: multinode.sh on node 0 (hostfile: every node), output DIR/out.txt.
run_multinode() {
  local dir=$1 np=$2
  shift 2
  mkdir -p "$dir"
  # shellcheck disable=SC2046,SC2016  # train_args: words without spaces; $1, $@: bash -c's
  timeout -k 5 "$job_limit" bash -c 'source "$1" && shift && netns_enter "$@"' run_multinode \
    "$here/netns_cluster.sh" "$(cluster_namespace 0)" node0 \
    "$root/launcher/mpirun/multinode.sh" "$CLUSTER_DIR/hostfile" "$np" "$config" \
    $(train_args "$dir") "$@" > "$dir/out.txt" 2>&1
}

# run_one_node DIR NP BTL ARGS...: the same job with plain mpirun on node 0 alone, over Open MPI's
# default transports (shared memory) when BTL is empty, else over BTL (tcp,self: TCP on loopback).
run_one_node() {
  local dir=$1 np=$2 btl=$3
  shift 3
  mkdir -p "$dir"
  # shellcheck disable=SC2046
  timeout -k 5 "$job_limit" env -u OMPI_MCA_btl -u OMPI_MCA_plm_rsh_agent \
    ${btl:+OMPI_MCA_btl=$btl} \
    nsenter --net="/run/netns/$(cluster_namespace 0)" \
    mpirun -np "$np" --allow-run-as-root --oversubscribe \
    --bind-to none -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -x GLOG_logtostderr \
    "$deepnet" train --config "$config" $(train_args "$dir") "$@" \
    > "$dir/out.txt" 2>&1
}

# run_single DIR ARGS...: one process, no MPI.
run_single() {
  local dir=$1
  shift
  mkdir -p "$dir"
  # shellcheck disable=SC2046
  timeout -k 5 "$job_limit" "$deepnet" train --config "$config" \
    $(train_args "$dir") "$@" > "$dir/out.txt" 2>&1
}

show_failure() {  # show_failure DIR: the end of a job's output, without the progress lines
  grep -v '] step [0-9]*/' "$1/out.txt" | tail -n 40
}

expect_identical() {  # expect_identical A B: parameters of two checkpoint roots, bit for bit
  python3 "$root/scripts/compare_checkpoints.py" "$1/ckpt" "$2/ckpt" --rtol 0 --atol 0 \
    > "$work/compare.txt" 2>&1 || { cat "$work/compare.txt"; return 1; }
  log "$(tail -n 1 "$work/compare.txt")"
}

# Seconds per step from rank 0's metrics, steps 2..last (step 1 includes start-up).
step_seconds() {
  python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if '"elapsed_seconds"' in line]
rows = [r for r in rows if "loss" in r]
first, last = rows[0], rows[-1]
seconds = last["elapsed_seconds"] - first["elapsed_seconds"]
print("%.4f" % (seconds / (last["step"] - first["step"])))
PY
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

veth_bytes() {  # bytes the root-side veths carried so far, both directions, all nodes
  local k total=0 dir
  for (( k = 0; k < CLUSTER_NODES; ++k )); do
    for dir in rx tx; do
      total=$(( total + $(cat "/sys/class/net/$(cluster_veth "$k")/statistics/${dir}_bytes") ))
    done
  done
  echo "$total"
}

up() {  # up NODES SLOTS: the cluster, or exit 77 with the reason
  local rc
  cluster_up "$1" "$2"
  rc=$?
  (( rc == 77 )) && exit 77
  (( rc == 0 )) || fail "could not build the cluster"
  log "cluster: $(tr '\n' ';' < "$CLUSTER_DIR/hosts")"
}

expect_grid_on_nodes() {  # expect_grid_on_nodes DIR NODES: rank 0's grid names every node
  local k
  for (( k = 0; k < $2; ++k )); do
    grep -qE "^rank [0-9]+ .* on node$k," "$1/out.txt" || {
      show_failure "$1"
      fail "no rank ran on node$k (grid in $1/out.txt)"
    }
  done
}

case_pipeline() {
  local steps=${MULTINODE_STEPS:-8} rounds=${MULTINODE_ROUNDS:-1} bytes round
  local args=(--set "train.max_steps=$steps" --set "checkpoint.every_steps=$steps"
              --set parallel.pipeline_stages=3)
  local across=() shared=() loopback=()
  up 3 1
  run_single "$work/single" "${args[@]:0:4}" || { show_failure "$work/single"; fail "one process"; }
  # Rounds alternate the three layouts, so that a change of the machine's load hits all three.
  for (( round = 1; round <= rounds; ++round )); do
    bytes=$(veth_bytes)
    run_multinode "$work/nodes$round" 3 "${args[@]}" ||
      { show_failure "$work/nodes$round"; fail "3 stages on 3 nodes failed"; }
    bytes=$(( $(veth_bytes) - bytes ))
    expect_grid_on_nodes "$work/nodes$round" 3
    (( bytes > 100000 )) || fail "the veths carried only $bytes bytes"
    expect_identical "$work/nodes$round" "$work/single" || fail "3 nodes differ from one process"
    run_one_node "$work/shared$round" 3 "" "${args[@]}" ||
      { show_failure "$work/shared$round"; fail "3 stages on one node"; }
    expect_identical "$work/shared$round" "$work/single" || fail "one node differs from one process"
    run_one_node "$work/loopback$round" 3 tcp,self "${args[@]}" ||
      { show_failure "$work/loopback$round"; fail "3 stages on one node over TCP"; }
    expect_identical "$work/loopback$round" "$work/single" ||
      fail "TCP loopback differs from one process"
    across+=("$(step_seconds "$work/nodes$round")")
    shared+=("$(step_seconds "$work/shared$round")")
    loopback+=("$(step_seconds "$work/loopback$round")")
  done
  local a s l
  a=$(median "${across[@]}") s=$(median "${shared[@]}") l=$(median "${loopback[@]}")
  local format='step time (tiny, 3 stages, %d steps, median of %d rounds, load %s): '
  format+='3 nodes (TCP over veths) %.1f ms, 1 node shared memory %.1f ms, 1 node TCP loopback '
  format+='%.1f ms; 3 nodes / shared memory %.2f, 3 nodes / loopback %.2f; veths carried %d bytes'
  local load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  log "$(awk -v f="$format" -v n="$steps" -v r="$rounds" -v load="$load" -v a="$a" -v s="$s" \
             -v l="$l" -v b="$bytes" \
             'BEGIN { printf f, n, r, load, a * 1000, s * 1000, l * 1000, a / s, a / l, b }')"
  log "ok: 3 stages on 3 nodes = one process, bit for bit"
}

case_pipeline_1000l() {
  config=$root/configs/deepnet-1000L.pbtxt
  local args=(--set train.max_steps=2 --set checkpoint.every_steps=2 --set model.vocab_size=256
              --set data.max_tokens_per_batch=128 --set data.max_source_length=64
              --set data.max_target_length=64 --set parallel.micro_batches=2
              --set 'logging.trace_dir=""' --set train.valid_every=0)
  up 3 1
  local start=$SECONDS
  run_single "$work/single" "${args[@]}" --set parallel.pipeline_stages=1 ||
    { show_failure "$work/single"; fail "one process"; }
  log "one process: 2 steps in $(( SECONDS - start )) s"
  start=$SECONDS
  run_multinode "$work/nodes" 3 "${args[@]}" --set parallel.pipeline_stages=3 ||
    { show_failure "$work/nodes"; fail "3 stages on 3 nodes failed"; }
  log "3 stages on 3 nodes: 2 steps in $(( SECONDS - start )) s"
  expect_grid_on_nodes "$work/nodes" 3
  expect_identical "$work/nodes" "$work/single" || fail "3 nodes differ from one process"
  log "ok: the 1,000-layer model as 3 stages on 3 nodes = one process, bit for bit"
}

case_dp_pp() {
  local args=(--set train.max_steps=6 --set checkpoint.every_steps=6
              --set parallel.pipeline_stages=2 --set parallel.data_parallel=2)
  up 2 2
  run_multinode "$work/nodes" 4 "${args[@]}" ||
    { show_failure "$work/nodes"; fail "2x2 on 2 nodes failed"; }
  expect_grid_on_nodes "$work/nodes" 2
  run_one_node "$work/local" 4 "" "${args[@]}" ||
    { show_failure "$work/local"; fail "2x2 on one node"; }
  expect_identical "$work/nodes" "$work/local" || fail "2 nodes differ from one node"
  log "ok: 2 replicas x 2 stages on 2 nodes = the same grid on one node, bit for bit"
}

# start_long_job DIR ARGS...: a 3-stage job on 3 nodes in the background (sets job_pid) that
# trains until cut; returns once rank 0 has logged step 5.
start_long_job() {
  local dir=$1 waited=0
  shift
  run_multinode "$dir" 3 --set parallel.pipeline_stages=3 \
    --set "parallel.comm_timeout_seconds=$comm_timeout" "$@" &
  job_pid=$!
  until grep -q '] step 5/' "$dir/out.txt" 2> /dev/null; do
    if gone "$job_pid" || (( waited >= 1200 )); then
      show_failure "$dir"
      fail "the job did not start training"
    fi
    sleep 0.1
    waited=$(( waited + 1 ))
  done
}

# wait_job_and_nodes: waits for the job, then up to the limit for every node's processes to go.
# Sets job_rc, mpirun_seconds and job_seconds (from job_start until every process is gone).
wait_job_and_nodes() {
  wait "$job_pid"
  job_rc=$?
  mpirun_seconds=$(awk -v a="$job_start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  local i
  for (( i = 0; i < 20 * limit; ++i )); do
    [[ -z $(cluster_pids) ]] && break
    sleep 0.05
  done
  job_seconds=$(awk -v a="$job_start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
}

# A line naming rank K and its node: multinode.sh's "lost node", mpirun's "process rank K ... on
# node", or a survivor's deepnet error.
names_lost_rank() {  # names_lost_rank OUT K
  local k=$2 addr="198\.18\.0\.$(( $2 + 1 ))"
  local by_script="lost node $addr, which ran world ranks? $k\b"
  local by_mpirun="process rank $k with PID .* on node (node$k|$addr)"
  local by_deepnet="rank $k\b.*host node$k\b"
  grep -m 1 -E "$by_script|$by_mpirun|$by_deepnet" "$1"
}

# Every surviving rank's own error (cmd_train.cc's "error on world rank R of N (host nodeR)", the
# status and its lines below) names the lost rank K and its host; prints the survivors that do not.
survivors_not_naming() {  # survivors_not_naming OUT K RANKS
  local out=$1 k=$2 ranks=$3 r
  local lost="(rank $k \\(host node$k\\)|world rank $k, host node$k\\))"
  for (( r = 0; r < ranks; ++r )); do
    (( r == k )) && continue
    awk -v head="deepnet train: error on world rank $r of $ranks \\(host node$r\\)" -v lost="$lost" '
      $0 ~ head { mine = 1; lines = 0 }
      mine && lines++ < 6 && $0 ~ lost { found = 1 }
      END { exit !found }' "$out" || echo -n "$r "
  done
}

stop_rank_of_node() {  # SIGSTOP to the deepnet process of node K (its daemon keeps running)
  local pid
  for pid in $(cluster_pids "$1"); do
    [[ $(cat "/proc/$pid/comm" 2> /dev/null) == deepnet ]] && kill -STOP "$pid"
  done
}

case_cut() {
  local how=$1 trials=${MULTINODE_TRIALS:-5} trial k failures=0 times=() line leftover silent
  for (( trial = 1; trial <= trials; ++trial )); do
    # A fresh cluster per trial: a link that was down may take a while to carry traffic again.
    up 3 1
    k=$(( 1 + (trial - 1) % 2 ))
    local dir=$work/trial$trial problems=()
    start_long_job "$dir" --set train.max_steps=1000000 --set checkpoint.every_steps=1000000
    job_start=$(now)
    case $how in
      link) cluster_cut_link "$k" ;;
      kill) cluster_kill_node "$k" ;;
      stop) stop_rank_of_node "$k" ;;
    esac
    wait_job_and_nodes
    leftover=$(cluster_pids | tr '\n' ' ')
    [[ -n $leftover ]] && problems+=("processes left: $leftover")
    cluster_down
    (( job_rc == 0 || job_rc == 75 || job_rc == 124 )) && problems+=("mpirun exited $job_rc")
    [[ $how == stop ]] && (( job_rc != 1 )) &&
      problems+=("mpirun exited $job_rc, not 1 (MPI_Abort)")
    awk -v s="$job_seconds" -v l="$limit" 'BEGIN { exit !(s > l) }' &&
      problems+=("ended after $job_seconds s (limit $limit s)")
    line=$(names_lost_rank "$dir/out.txt" "$k")
    [[ -z $line ]] && problems+=("no message naming rank $k and node$k")
    if [[ $how == link ]]; then
      silent=$(survivors_not_naming "$dir/out.txt" "$k" 3)
      [[ -n $silent ]] && problems+=("surviving ranks ${silent% } did not name rank $k (host node$k)")
    fi
    if (( ${#problems[@]} > 0 )); then
      failures=$(( failures + 1 ))
      log "trial $trial ($how node$k): FAIL: $(IFS=';'; echo "${problems[*]}")"
      show_failure "$dir"
    else
      log "trial $trial ($how node$k): ok: exit $job_rc, mpirun after $mpirun_seconds s, all gone" \
          "after $job_seconds s: ${line:0:160}"
    fi
    times+=("$job_seconds")
  done
  log "$(printf '%s\n' "${times[@]}" | sort -n | awk -v how="$how" -v c="$comm_timeout" '
    { t[NR] = $1 }
    END {
      printf "node cut by %s, %d trials, comm_timeout_seconds %d: ", how, NR, c
      printf "exit after min %.1f s, median %.1f s, max %.1f s", t[1],
             (NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2), t[NR]
    }')"
  (( failures == 0 )) || fail "$failures of $trials trials failed"
  log "ok: $trials cuts by $how"
}

case_resume() {
  local steps=300 every=20 latest
  local args=(--set "train.max_steps=$steps" --set "checkpoint.every_steps=$every")
  up 3 1
  start_long_job "$work/cut" "${args[@]}"
  until [[ $(cat "$work/cut/ckpt/latest" 2> /dev/null) > step-0000040 ]]; do
    gone "$job_pid" && fail "the job ended before the cut"
    sleep 0.05
  done
  job_start=$(now)
  cluster_kill_node 2
  wait_job_and_nodes
  (( job_rc != 0 )) || fail "the cut job exited 0"
  latest=$(cat "$work/cut/ckpt/latest")
  [[ $latest == "step-0000$steps" ]] && fail "the job finished before the cut"
  log "cut (kill -9 of node2) after $latest: exit $job_rc after $job_seconds s"
  run_multinode "$work/cut" 3 "${args[@]}" --set parallel.pipeline_stages=3 --resume ||
    { show_failure "$work/cut"; fail "the resumed job failed"; }
  local step=$(( 10#${latest#step-} ))
  grep -q "resumed from $work/cut/ckpt/$latest at step $step" "$work/cut/out.txt" ||
    { show_failure "$work/cut"; fail "no \"resumed from .../$latest at step $step\""; }
  run_single "$work/single" "${args[@]}" || { show_failure "$work/single"; fail "one process"; }
  expect_identical "$work/cut" "$work/single" || fail "cut + resumed differs from an uncut run"
  log "ok: resumed from $latest after the cut; step $steps = uncut run, bit for bit"
}

case $case_name in
  pipeline) case_pipeline ;;
  pipeline_1000l) case_pipeline_1000l ;;
  dp_pp) case_dp_pp ;;
  cut_link) case_cut link ;;
  cut_kill) case_cut kill ;;
  stop) case_cut stop ;;
  resume) case_resume ;;
  *) echo "unknown case $case_name" >&2; exit 2 ;;
esac
exit 0
