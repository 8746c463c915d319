#!/usr/bin/env bash
# deepnet over several nodes with plain mpirun (no batch system): a hostfile, one rank per slot,
# ranks placed and bound per node, the environment forwarded to the remote ranks.
#
#   launcher/mpirun/multinode.sh HOSTFILE NP CONFIG [more `deepnet train` arguments]
#   launcher/mpirun/multinode.sh launcher/hostfile.example 8 configs/deepnet-1000L.pbtxt \
#       --set parallel.pipeline_stages=8 --resume
#
# Needs the same paths on every node (shared file system) and passwordless ssh between them
# (or another agent: OMPI_MCA_plm_rsh_agent, as tests/launch/multinode does).
# Settings (environment):
#   DEEPNET_BIN          the deepnet executable (default build/launcher/deepnet)
#   PER_NODE             ranks per node (default: the first host's slots)
#   OMP_NUM_THREADS      threads per rank (default 1); each rank is bound to that many cores
#   OPENBLAS_CORETYPE    forwarded when set; else each rank's deepnet picks the core for its CPU
#   MPI_IFACE            interfaces or a subnet for Open MPI's TCP traffic (eth0, ib0, 10.1.0.0/16)
#   MPI_BIND             core (default): each rank bound to its cores; none: ranks float
#   MPI_NODE_TIMEOUT     seconds after which mpirun gives up on a node it cannot reach (default 60;
#                        TCP keepalive of its daemons). Above 2 x (comm_timeout_seconds + 2),
#                        deepnet's ranks notice a cut node first and each survivor names the lost
#                        rank and its host; mpirun then ends once TCP gives up on the node
#                        (net.ipv4.tcp_retries2 on the nodes, launcher/README.md "Multi-node").
#                        Below it, Open MPI ends the job and this script names the node's ranks
#   DRY_RUN=1            print the mpirun command instead of running it
# SIGUSR1 to this script's mpirun is forwarded to every rank: they save a checkpoint after the
# current step and exit 75; run again with --resume to continue.
set -euo pipefail

if (( $# < 3 )); then
  sed -n '2,/^set -/{/^set -/d; s/^# \{0,1\}//p}' "$0" >&2  # the header above
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

command=(mpirun --hostfile "$hostfile" -np "$np")
case ${MPI_BIND:-core} in
  core) command+=(--map-by "ppr:${per_node}:node:PE=${OMP_NUM_THREADS}" --bind-to core
                  --report-bindings) ;;
  none) command+=(--map-by "ppr:${per_node}:node" --bind-to none) ;;
  *) echo "multinode.sh: MPI_BIND must be core or none, not '$MPI_BIND'" >&2; exit 2 ;;
esac
# Open MPI notices a node cut off the network by TCP keepalive (probes unanswered for about
# MPI_NODE_TIMEOUT seconds) on idle connections, on mpirun's side and on the node's daemon's. A
# connection with data in flight (mpirun's order to end the job after a rank's MPI_Abort, the cut
# daemon's report of it) fails only when the kernel stops retransmitting: net.ipv4.tcp_retries2.
node_timeout=${MPI_NODE_TIMEOUT:-60}
if ! [[ $node_timeout =~ ^[0-9]+$ ]] || (( node_timeout < 2 )); then
  echo "multinode.sh: MPI_NODE_TIMEOUT must be whole seconds >= 2, not '$node_timeout'" >&2
  exit 2
fi
command+=(--mca oob_tcp_keepalive_time $(( node_timeout / 2 ))
          --mca oob_tcp_keepalive_intvl $(( node_timeout / 4 > 0 ? node_timeout / 4 : 1 ))
          --mca oob_tcp_keepalive_probes 2)
for name in OMP_NUM_THREADS OMP_PROC_BIND OMP_PLACES OMP_WAIT_POLICY GLOG_logtostderr PATH \
            LD_LIBRARY_PATH OPENBLAS_CORETYPE $(compgen -e | grep -E '^(NCCL_|UCX_|CUDA_)' || true); do
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

# Open MPI names a lost node ("Remote daemon: [[1,0],2] on node node03" when its daemon is gone,
# "Peer host: node03" when a rank there hung up), not the ranks it ran: add them, once per node.
# Ranks fill the hostfile's nodes in order, per_node on each (--map-by ppr).
name_lost_ranks() {
  awk -v hosts="$(awk '!/^[[:space:]]*(#|$)/ { print $1 }' "$hostfile" | tr '\n' ' ')" \
      -v per_node="$per_node" -v np="$np" '
    BEGIN { count = split(hosts, host, " ") }
    { print; fflush() }
    /Remote daemon:.* on node |^ *Peer host: / {
      lost = $NF
      for (i = 1; i <= count; ++i) {
        if (host[i] != lost || named[lost]++) continue
        first = (i - 1) * per_node
        last = (i * per_node < np ? i * per_node : np) - 1
        printf "multinode.sh: lost node %s, which ran world rank%s %d%s\n", lost,
               (last > first ? "s" : ""), first, (last > first ? ".." last : "")
        fflush()
      }
    }'
}
exec "${command[@]}" 2> >(name_lost_ranks >&2)
