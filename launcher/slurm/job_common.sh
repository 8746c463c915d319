# shellcheck shell=bash
# Shared body of launcher/slurm/*.sbatch (sourced by bash inside the allocation).
#
# Runs `deepnet train` on every task of the allocation, forwards the batch system's stop signals to
# it, and requeues the job when training stopped to checkpoint (exit 75, train/signals.h):
#   SIGUSR1 (#SBATCH --signal=B:USR1@60, or `scancel --batch --signal=USR1 <job>`)
#       -> the script sends SIGUSR1 to the launcher (mpirun and srun forward it to every rank)
#       -> each rank saves a checkpoint at the end of its current step and exits 75
#       -> the script runs `scontrol requeue <job>`; the next run has SLURM_RESTART_COUNT > 0 and
#          resumes from the checkpoint (--resume).
#   SIGTERM (scancel, preemption) is forwarded the same way, but the job is not requeued by us.
#
# Settings (environment; sbatch exports the submitting shell's environment by default):
#   DEEPNET_BIN          the deepnet executable (default build/launcher/deepnet)
#   DEEPNET_CONFIG       run config (default configs/demo.pbtxt)
#   DEEPNET_STAGES       parallel.pipeline_stages (default: SLURM_NTASKS / DEEPNET_DATA_PARALLEL)
#   DEEPNET_DATA_PARALLEL parallel.data_parallel (default 1)
#   DEEPNET_RUN_DIR      checkpoints, metrics and traces (default runs/<job id>; the same after a
#                        requeue, which keeps the job id)
#   DEEPNET_ARGS         more `deepnet train` arguments, split on spaces (--set x=y ...)
#   DEEPNET_LAUNCH       mpirun (default) or srun (srun --mpi=pmix; needs a PMIx-enabled Slurm)
#   DEEPNET_MPIRUN_MAPPING mpirun placement (default "--map-by ppr:<tasks per node>:node:PE=<threads>
#                        --bind-to core"; "--bind-to none" when ranks share cores)
#   DEEPNET_MPIRUN_ARGS  more mpirun arguments (e.g. "--oversubscribe")
#   DEEPNET_REQUEUE      1 (default): requeue after a stop for checkpoint; 0: just exit
#   DEEPNET_RESUME       1: pass --resume on the first run too (continue an earlier job's run dir)
#   OMP_NUM_THREADS      threads per rank (default SLURM_CPUS_PER_TASK, else 1)
#   OPENBLAS_CORETYPE    forwarded when set; else each rank's deepnet picks the core for its CPU

deepnet_log() { echo "deepnet-job: $*"; }

# The command that starts one deepnet process per task.
deepnet_launch_command() {
  local tasks=$1 per_node=$2
  case ${DEEPNET_LAUNCH:-mpirun} in
    mpirun)
      launch=(mpirun -np "$tasks")
      # shellcheck disable=SC2206  # split on purpose
      launch+=(${DEEPNET_MPIRUN_MAPPING:---map-by ppr:${per_node}:node:PE=${OMP_NUM_THREADS} --bind-to core})
      # Environment for ranks on other nodes (local ranks inherit it anyway).
      local name
      for name in OMP_NUM_THREADS OMP_PROC_BIND OMP_PLACES OMP_WAIT_POLICY GLOG_logtostderr PATH \
                  LD_LIBRARY_PATH OPENBLAS_CORETYPE $(compgen -e | grep -E '^(NCCL_|UCX_|CUDA_)'); do
        [[ -n ${!name+set} ]] && launch+=(-x "$name")
      done
      [[ $(id -u) -eq 0 ]] && launch+=(--allow-run-as-root)
      # shellcheck disable=SC2206  # split on purpose
      launch+=(${DEEPNET_MPIRUN_ARGS:-})
      ;;
    srun)
      launch=(srun --mpi=pmix --kill-on-bad-exit=1 --ntasks="$tasks"
              --cpus-per-task="$OMP_NUM_THREADS" --cpu-bind=cores)
      ;;
    *)
      deepnet_log "DEEPNET_LAUNCH must be mpirun or srun, not '${DEEPNET_LAUNCH}'"
      return 2
      ;;
  esac
}

deepnet_on_signal() {
  deepnet_signalled=$1
  deepnet_signal_count=$(( deepnet_signal_count + 1 ))
  deepnet_log "received SIG$1: asking training to checkpoint and stop"
  kill -USR1 "$deepnet_child" 2>/dev/null
}

# Runs the launcher in the background and waits for it, so that the traps run while it trains
# (bash runs a trap only between commands; `wait` is interrupted by a trapped signal).
deepnet_run_and_wait() {
  "$@" &
  deepnet_child=$!
  deepnet_signal_count=0
  trap 'deepnet_on_signal USR1' USR1
  trap 'deepnet_on_signal TERM' TERM
  local rc=1 status seen
  while :; do
    seen=$deepnet_signal_count
    wait "$deepnet_child"
    status=$?
    # Cut short by a trap: wait again (for the exit status, if it has exited meanwhile).
    (( deepnet_signal_count != seen )) && continue
    (( status != 127 )) && rc=$status  # 127: reaped already; keep what we had
    break
  done
  trap - USR1 TERM
  return "$rc"
}

deepnet_job_main() {
  local tasks=${SLURM_NTASKS:-1}
  local nodes=${SLURM_JOB_NUM_NODES:-1}
  local per_node=$(( (tasks + nodes - 1) / nodes ))
  local data_parallel=${DEEPNET_DATA_PARALLEL:-1}
  local stages=${DEEPNET_STAGES:-$(( tasks / data_parallel ))}
  local restart=${SLURM_RESTART_COUNT:-0}
  local run_dir=${DEEPNET_RUN_DIR:-runs/${SLURM_JOB_ID:-local}}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
  export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} GLOG_logtostderr=1
  deepnet_signalled=

  mkdir -p "$run_dir"
  local args=(train --config "${DEEPNET_CONFIG:-configs/demo.pbtxt}"
              --set "parallel.pipeline_stages=$stages" --set "parallel.data_parallel=$data_parallel"
              --checkpoint_dir "$run_dir/checkpoints"
              --set "logging.json_metrics=$run_dir/metrics.jsonl")
  if (( restart > 0 )) || [[ ${DEEPNET_RESUME:-0} == 1 ]]; then
    args+=(--resume)
  fi
  # shellcheck disable=SC2206  # split on purpose
  args+=(${DEEPNET_ARGS:-})

  local launch=()
  deepnet_launch_command "$tasks" "$per_node" || return $?
  deepnet_log "job ${SLURM_JOB_ID:-?} restart $restart on ${SLURM_JOB_NODELIST:-$(hostname -s)}:" \
              "$tasks tasks ($stages stages x $data_parallel replicas), $OMP_NUM_THREADS threads each"
  deepnet_log "${launch[*]} ${DEEPNET_BIN:-build/launcher/deepnet} ${args[*]}"
  deepnet_run_and_wait "${launch[@]}" "${DEEPNET_BIN:-build/launcher/deepnet}" "${args[@]}"
  local rc=$?
  deepnet_log "training exited with status $rc"
  if (( rc == 75 )); then
    if [[ ${DEEPNET_REQUEUE:-1} == 1 && $deepnet_signalled != TERM && -n ${SLURM_JOB_ID:-} ]]; then
      deepnet_log "checkpoint saved; requeueing job $SLURM_JOB_ID"
      scontrol requeue "$SLURM_JOB_ID" && return 0
      deepnet_log "scontrol requeue failed; resubmit with DEEPNET_RESUME=1 DEEPNET_RUN_DIR=$run_dir"
    fi
  fi
  return "$rc"
}
