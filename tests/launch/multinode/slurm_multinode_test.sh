#!/bin/bash
# Slurm across nodes of the namespace test bed (netns_cluster.sh): slurmctld on node0 and one
# slurmd per node (`slurmd -N nodeK` inside node K, so each has its own address and the default
# ports), then `sbatch --nodes=2 launcher/slurm/deepnet-multinode.sbatch` on the tiny config as a
# 2-stage pipeline, one rank per node: mpirun inside the allocation starts its daemon on node1
# through Slurm (srun), ranks talk TCP over the veths. The job must complete, its grid must show
# both nodes, and its parameters must equal one process's bit for bit.
#
#   slurm_multinode_test.sh DEEPNET_BINARY REPO_ROOT
#
# Exit 0 pass, 1 fail, 77 skip (no namespaces, no Slurm or munge). Daemons, nodes and munged (if
# this script started it) are stopped on every exit path. $MULTINODE_DATA as in multinode_test.sh.
set -uo pipefail

deepnet=$(readlink -f "${1:?deepnet binary}")
root=$(readlink -f "${2:?repository root}")
here=$root/tests/launch/multinode
steps=6

# shellcheck source=tests/launch/job_helpers.sh
source "$root/tests/launch/job_helpers.sh"
# shellcheck source=tests/launch/multinode/netns_cluster.sh
source "$here/netns_cluster.sh"

log() { echo "multinode[slurm]: $*"; }
fail() { log "FAIL: $*"; exit 1; }
for tool in munged munge unmunge slurmctld slurmd sbatch sinfo mpirun; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool is not installed (scripts/setup.sh)"; exit 77; }
done
[[ -r /etc/munge/munge.key ]] || { echo "SKIP: no /etc/munge/munge.key"; exit 77; }

work=$(mktemp -d "${TMPDIR:-/tmp}/deepnet_multinode_slurm.XXXXXX")
chmod 755 "$work"
CLUSTER_DIR=$work
started_munged=0
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  local rc=$?
  cluster_down  # slurmctld, the slurmds and the job's processes live in the nodes
  (( started_munged )) && kill "$(cat /run/munge/munged.pid)" 2> /dev/null
  if (( rc != 0 && rc != 77 )); then
    for f in "$work"/log/*.log; do [[ -f $f ]] && { echo "----- $f"; tail -n 20 "$f"; }; done
  fi
  if [[ ${MULTINODE_KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

data=${MULTINODE_DATA:-$work/shared-data}
if [[ ! -f $data/ready ]]; then
  mkdir -p "$data"
  prepare_small_data "$deepnet" "$root" "$data" || fail "preparing the data"
  touch "$data/ready"
fi

cluster_up 2 1
rc=$?
(( rc == 77 )) && exit 77
(( rc == 0 )) || fail "could not build the cluster"

if ! munge -n 2> /dev/null | unmunge > /dev/null 2>&1; then
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  su -s /bin/sh munge -c /usr/sbin/munged || fail "munged did not start"
  started_munged=1
fi

# The nodes declare 8 CPUs (the sbatch asks --cpus-per-task=8 unless told otherwise);
# config_overrides lets slurmd accept more than the machine has.
mkdir -p "$work"/{state,spool,log,run,out}
export SLURM_CONF=$work/slurm.conf
cat > "$SLURM_CONF" << EOF
ClusterName=deepnet-multinode
SlurmctldHost=node0(198.18.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool/%n
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd-%n.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd-%n.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
KillWait=5
NodeName=node0 NodeAddr=198.18.0.1 CPUs=8 RealMemory=1000 State=UNKNOWN
NodeName=node1 NodeAddr=198.18.0.2 CPUs=8 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=node[0-1] Default=YES MaxTime=INFINITE State=UP
EOF
cluster_exec 0 slurmctld || fail "slurmctld did not start"
for k in 0 1; do cluster_exec "$k" slurmd -N "node$k" || fail "slurmd node$k did not start"; done
for _ in $(seq 100); do
  [[ $(cluster_exec 0 sinfo -h -o '%D %t' 2> /dev/null) == "2 idle" ]] && break
  sleep 0.2
done
[[ $(cluster_exec 0 sinfo -h -o '%D %t' 2> /dev/null) == "2 idle" ]] ||
  fail "the nodes did not become idle: $(cluster_exec 0 sinfo 2>&1)"
log "cluster: slurmctld on node0, slurmd on node0 and node1"

# The job's environment (sbatch exports it): the tiny config as 2 stages, Open MPI over the veths.
export DEEPNET_BIN=$deepnet DEEPNET_CONFIG=$root/configs/tiny.pbtxt DEEPNET_STAGES=2
export DEEPNET_RUN_DIR=$work/run DEEPNET_MPIRUN_MAPPING="--bind-to none" OMP_NUM_THREADS=1
export DEEPNET_ARGS="--data_dir $data/data --set train.max_steps=$steps --set train.valid_every=0
                     --set checkpoint.every_steps=$steps"
export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=$CLUSTER_SUBNET
export OMPI_MCA_oob_tcp_if_include=$CLUSTER_SUBNET
unset DEEPNET_RESUME DEEPNET_LAUNCH DEEPNET_MPIRUN_ARGS DEEPNET_DATA_PARALLEL
out=$work/out/job.out
# shellcheck disable=SC2016  # $1, $@: bash -c's
timeout -k 5 180 bash -c 'source "$1" && shift && netns_enter "$@"' sbatch "$here/netns_cluster.sh" \
  "$(cluster_namespace 0)" node0 sbatch --wait --quiet --nodes=2 --ntasks-per-node=1 \
  --cpus-per-task=1 --gpus-per-node=0 --chdir="$root" --output="$out" \
  "$root/launcher/slurm/deepnet-multinode.sbatch"
rc=$?
(( rc == 0 )) || { grep -v '] step [0-9]*/' "$out" | tail -n 40; fail "sbatch exited $rc"; }
grep -q "step $steps/$steps | loss" "$out" || fail "no final loss line in $out"
for k in 0 1; do
  grep -qE "^rank [0-9]+ .* on node$k," "$out" || fail "no rank ran on node$k"
done
"$deepnet" train --config "$root/configs/tiny.pbtxt" --data_dir "$data/data" \
  --checkpoint_dir "$work/single" --set "train.max_steps=$steps" --set train.valid_every=0 \
  --set "checkpoint.every_steps=$steps" > "$work/single.txt" 2>&1 || fail "one process"
python3 "$root/scripts/compare_checkpoints.py" "$DEEPNET_RUN_DIR/checkpoints" "$work/single" \
  --rtol 0 --atol 0 > "$work/compare.txt" 2>&1 || { cat "$work/compare.txt"; fail "differs from one process"; }
log "$(tail -n 1 "$work/compare.txt")"
log "ok: sbatch --nodes=2 deepnet-multinode.sbatch ran 2 stages on node0 and node1 = one process, bit for bit"
