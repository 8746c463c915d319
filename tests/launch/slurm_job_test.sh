#!/usr/bin/env bash
# Slurm end to end on localhost: starts munged, slurmctld and slurmd with a generated slurm.conf in
# a temporary directory, then
#   1. `sbatch --wait` launcher/slurm/deepnet-1node.sbatch on the tiny config: loss lines and a
#      checkpoint;
#   2. a longer job signalled mid-run (scancel --batch --signal=USR1, what #SBATCH --signal sends
#      before the time limit): it checkpoints, requeues itself, runs again with
#      SLURM_RESTART_COUNT=1 and resumes from that checkpoint to the end;
#   3. a job on the strict test device in bf16 (backend and precision in DEEPNET_ARGS, as a GPU
#      job passes them): the device is named, it trains and checkpoints.
# The daemons are stopped on every exit path. Exit 77 (ctest SKIP_RETURN_CODE) when Slurm, munge or
# mpirun are missing or we are not root (munged and slurmd must run as their users).
#
# Usage: slurm_job_test.sh DEEPNET_BINARY REPOSITORY_ROOT
# DEEPNET_TEST_TASKS (default 1): tasks per job = pipeline stages; ctest passes 2 when the pipeline
# trainer is built (`mpirun -np 2 deepnet train` with parallel.pipeline_stages=2).
set -uo pipefail

deepnet_bin=$(realpath "${1:?deepnet binary}")
root=$(realpath "${2:?repository root}")
tasks=${DEEPNET_TEST_TASKS:-1}
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || skip "needs root to start munged and slurmd"
for tool in munged munge slurmctld slurmd sbatch scontrol scancel sinfo mpirun xz; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/setup.sh)"
done
[[ -r /etc/munge/munge.key ]] || skip "no /etc/munge/munge.key"

work=$(mktemp -d /tmp/deepnet-slurm-test.XXXXXX)
chmod 755 "$work"
export SLURM_CONF=$work/slurm.conf
started_munged=0

show_logs() {
  for f in "$work"/log/*.log "$work"/*.out; do
    [[ -f $f ]] || continue
    echo "----- $f (last 40 lines)"
    tail -n 40 "$f"
  done
}

stop_pid_file() {  # stops the daemon whose PID is in $1, waiting up to 10 s
  [[ -f $1 ]] || return 0
  local pid
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
}

cleanup() {
  local rc=$?
  if [[ -f $work/run/slurmctld.pid ]]; then
    scancel --full --quiet --user=root 2>/dev/null
    for _ in $(seq 50); do
      [[ -z $(squeue -h -t running,completing 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
  stop_pid_file "$work/run/slurmd.pid"
  stop_pid_file "$work/run/slurmctld.pid"
  (( started_munged )) && stop_pid_file /run/munge/munged.pid
  if (( rc != 0 && rc != 77 )); then
    show_logs
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'; }

start_cluster() {
  mkdir -p "$work"/{state,spool,log,run}
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
    su -s /bin/sh munge -c /usr/sbin/munged || fail "munged did not start"
    started_munged=1
    munge -n | unmunge >/dev/null || fail "munge does not work"
  fi
  local node
  node=$(hostname -s)
  cat > "$SLURM_CONF" <<EOF
ClusterName=deepnet-test
SlurmctldHost=localhost
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MpiDefault=pmix
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
KillWait=5
NodeName=$node CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld || fail "slurmctld did not start"
  slurmd || fail "slurmd did not start"
  for _ in $(seq 100); do
    [[ $(sinfo -h -o %t 2>/dev/null) == idle ]] && return 0
    sleep 0.2
  done
  sinfo
  fail "the node did not become idle"
}

# A small corpus, so that `prepare` takes seconds.
prepare_data() {
  xz -dc "$root/data/train.tsv.xz" | head -n 1500 > "$work/train.tsv"
  xz -dc "$root/data/valid.tsv.xz" | head -n 40 > "$work/valid.tsv"
  GLOG_logtostderr=1 "$deepnet_bin" prepare --config "$root/configs/tiny.pbtxt" \
    --set "data.train_tsv=$work/train.tsv" --set "data.valid_tsv=$work/valid.tsv" \
    --data_dir "$work/data" > "$work/log/prepare.log" 2>&1 || fail "deepnet prepare failed"
}

job_field() {  # job_field JOB FIELD: e.g. JobState, Restarts
  scontrol show job "$1" -o 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# The job's environment (sbatch exports the submitting environment).
export DEEPNET_BIN=$deepnet_bin DEEPNET_CONFIG=$root/configs/tiny.pbtxt DEEPNET_STAGES=$tasks
export OMP_NUM_THREADS=1
unset DEEPNET_RESUME DEEPNET_LAUNCH DEEPNET_MPIRUN_ARGS DEEPNET_MPIRUN_MAPPING
sbatch_args=(--ntasks="$tasks" --chdir="$root" --job-name=deepnet-test)

test_job_runs_and_checkpoints() {
  export DEEPNET_RUN_DIR=$work/run1
  export DEEPNET_ARGS="--data_dir $work/data --set train.max_steps=6 --set checkpoint.every_steps=3
                       --set train.valid_every=3"
  local out=$work/job1.out
  sbatch --wait --quiet "${sbatch_args[@]}" --output="$out" \
    "$root/launcher/slurm/deepnet-1node.sbatch" || fail "job 1 exited with $?"
  grep -q "step 6/6 | loss [0-9.]*" "$out" || fail "job 1: no final loss line"
  grep -q "valid loss" "$out" || fail "job 1: no validation line"
  [[ -f $DEEPNET_RUN_DIR/checkpoints/step-0000006/state.json ]] || fail "job 1: no checkpoint"
  echo "ok: job 1 trained 6 steps and saved $(cat "$DEEPNET_RUN_DIR/checkpoints/latest")"
}

# The device path as a GPU job takes it (backend and precision through DEEPNET_ARGS), on the strict
# test device: every rank names its device, bf16 mixed precision trains and checkpoints.
test_device_job() {
  export DEEPNET_RUN_DIR=$work/run3
  export DEEPNET_ARGS="--data_dir $work/data --set train.max_steps=3 --set checkpoint.every_steps=3
                       --set parallel.backend=STRICT --set parallel.precision=BF16"
  local out=$work/job3.out
  sbatch --wait --quiet "${sbatch_args[@]}" --output="$out" \
    "$root/launcher/slurm/deepnet-1node.sbatch" || fail "job 3 exited with $?"
  grep -q "strict (CPU-emulated device)" "$out" || fail "job 3: the device is not named"
  grep -q "step 3/3 | loss [0-9.]*" "$out" || fail "job 3: no final loss line"
  [[ -f $DEEPNET_RUN_DIR/checkpoints/step-0000003/state.json ]] || fail "job 3: no checkpoint"
  echo "ok: job 3 trained bf16 on the strict device and saved step 3"
}

test_signal_checkpoint_requeue_resume() {
  export DEEPNET_RUN_DIR=$work/run2
  local steps=300
  export DEEPNET_ARGS="--data_dir $work/data --set train.max_steps=$steps
                       --set checkpoint.every_steps=100000 --set train.valid_every=0"
  local out=$work/job2.out job
  job=$(sbatch --parsable "${sbatch_args[@]}" --output="$out" \
          "$root/launcher/slurm/deepnet-1node.sbatch") || fail "sbatch job 2"
  for _ in $(seq 600); do  # until training has logged a few steps
    grep -qE "step ([3-9]|[1-9][0-9]+)/$steps " "$out" 2>/dev/null && break
    sleep 0.1
  done
  scancel --batch --signal=USR1 "$job" || fail "could not signal job 2"
  local state='' requeued_at=''
  for _ in $(seq 600); do
    state=$(job_field "$job" JobState)
    if [[ $state == PENDING && $(job_field "$job" Restarts) -ge 1 ]]; then
      # Start it as soon as the old run's credential has expired (cred_expire=10; earlier, slurmd
      # refuses the launch and the job fails), instead of waiting out the requeue delay.
      requeued_at=${requeued_at:-$SECONDS}
      if (( SECONDS - requeued_at >= 12 )); then
        scontrol update JobId="$job" StartTime=now 2>/dev/null
      fi
    fi
    [[ $state == COMPLETED || $state == FAILED || $state == CANCELLED ]] && break
    sleep 0.25
  done
  [[ $state == COMPLETED ]] || fail "job 2 ended $state"
  local k
  k=$(sed -n 's/.*stopped for requeue at step \([0-9]*\).*/\1/p' "$out" | head -n 1)
  [[ -n $k ]] || fail "job 2 did not stop for requeue"
  (( k > 0 && k < steps )) || fail "job 2 stopped at step $k"
  grep -q "received SIGUSR1" "$out" || fail "job 2: the script did not see SIGUSR1"
  grep -q "requeueing job $job" "$out" || fail "job 2 did not requeue itself"
  grep -q "restart 1 on" "$out" || fail "job 2 did not run again"
  grep -q "resumed from $DEEPNET_RUN_DIR/checkpoints/step-$(printf %07d "$k") at step $k" "$out" ||
    fail "job 2 did not resume from step $k"
  grep -q "step $steps/$steps | loss" "$out" || fail "job 2 did not finish"
  echo "ok: job 2 stopped at step $k, requeued itself, resumed from step $k and finished $steps"
}

start=$SECONDS
start_cluster
prepare_data
echo "cluster up and data prepared in $((SECONDS - start)) s"
test_job_runs_and_checkpoints
test_device_job
test_signal_checkpoint_requeue_resume
echo "PASS in $((SECONDS - start)) s"
