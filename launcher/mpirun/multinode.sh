#!/usr/bin/env bash
# deepnet over several nodes with plain mpirun (no batch system): a hostfile, one rank per slot,
# ranks placed and bound per node, the environment forwarded to the remote ranks.
#
#   launcher/mpirun/multinode.sh HOSTFILE NP CONFIG [more `deepnet train` arguments]
#   launcher/mpirun/multinode.sh launcher/hostfile.example 8 configs/deepnet-1000L.pbtxt \
#       --set parallel.pipeline_stages=8 --resume
#
# Needs the same paths on every node (shared file system) and passwordless ssh between them.
# Settings (environment):
#   DEEPNET_BIN          the deepnet executable (default build/launcher/deepnet)
#   PER_NODE             ranks per node (default: the first host's slots)
#   OMP_NUM_THREADS      threads per rank (default 1); each rank is bound to that many cores
#   MPI_IFACE            network interface for Open MPI's TCP traffic (e.g. eth0, ib0)
#   DRY_RUN=1            print the mpirun command instead of running it
# SIGUSR1 to this script's mpirun is forwarded to every rank: they save a checkpoint after the
# current step and exit 75; run again with --resume to continue.
set -euo pipefail

if (( $# < 3 )); then
  sed -n '2,20s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
hostfile=$1 np=$2 config=$3
shift 3
[[ -r $hostfile ]] || { echo "multinode.sh: cannot read hostfile $hostfile" >&2; exit 2; }

first_slots=$(awk '!/^[[:space:]]*(#|$)/ { for (i = 2; i <= NF; ++i) if ($i ~ /^slots=/) {
                 sub("slots=", "", $i); print $i; exit } }' "$hostfile")
per_node=${PER_NODE:-${first_slots:-1}}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_PROC_BIND=${OMP_PROC_BIND:-close}
export OMP_PLACES=${OMP_PLACES:-cores} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export GLOG_logtostderr=1

command=(mpirun --hostfile "$hostfile" -np "$np"
         --map-by "ppr:${per_node}:node:PE=${OMP_NUM_THREADS}" --bind-to core --report-bindings)
for name in OMP_NUM_THREADS OMP_PROC_BIND OMP_PLACES OMP_WAIT_POLICY GLOG_logtostderr PATH \
            LD_LIBRARY_PATH $(compgen -e | grep -E '^(NCCL_|UCX_|CUDA_)' || true); do
  [[ -n ${!name+set} ]] && command+=(-x "$name")
done
if [[ -n ${MPI_IFACE:-} ]]; then
  command+=(--mca btl_tcp_if_include "$MPI_IFACE" --mca oob_tcp_if_include "$MPI_IFACE")
fi
[[ $(id -u) -eq 0 ]] && command+=(--allow-run-as-root)
command+=("${DEEPNET_BIN:-build/launcher/deepnet}" train --config "$config" "$@")

if [[ ${DRY_RUN:-0} == 1 ]]; then
  printf '%q ' "${command[@]}"
  echo
  exit 0
fi
exec "${command[@]}"
