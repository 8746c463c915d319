# shellcheck shell=bash
# A cluster of "nodes" on one machine for multi-node tests: each node is a network namespace with
# its own hostname (a UTS namespace per process tree started in it), joined to the others by a
# veth pair to one bridge in the root namespace. Sourced; needs root, `ip` and `unshare`.
#
#   cluster_up NODES SLOTS     create the nodes; writes $CLUSTER_DIR/hostfile (one line per node:
#                              its address, slots=SLOTS) and $CLUSTER_DIR/hosts (for the agent)
#   cluster_exec K CMD...      run CMD on node K (its namespace and hostname)
#   netns_enter NS NAME CMD... become CMD in network namespace NS with hostname NAME (exec)
#   cluster_cut_link K         take node K's link down (its veth in the root namespace)
#   cluster_kill_node K        kill -9 every process of node K
#   cluster_pids [K]           the processes of node K, or of every node
#   cluster_down               kill every process of every node, delete namespaces and bridge
#
# Addresses: 198.18.0.1, .2, ... (198.18.0.0/15 is reserved for network benchmarks), assigned
# inside the namespaces only; the bridge and the root namespace get none, so no traffic ever
# leaves the nodes. Names carry this shell's pid and a count of clusters made (the kernel removes a
# deleted namespace's veths a moment later), so no two clusters collide. Nodes are named node0,
# node1, ...; mpirun reaches them through netns_rsh_agent.sh (no sshd).
#
# cluster_up returns 77 (ctest's skip code, reason on stdout) when namespaces cannot be made.
# Call cluster_down from an EXIT trap: it is idempotent and also removes a half-built cluster. A
# run killed outright (SIGKILL, no trap) leaves its cluster; the next cluster_up removes it (the
# namespaces are named deepnet-mn-<pid of the shell>-<tag>-n<K>, and that shell is gone).

# shellcheck disable=SC2034  # for the scripts that source this one (MPI_IFACE)
CLUSTER_SUBNET=198.18.0.0/15
CLUSTER_NODES=0
CLUSTER_COUNT=0
CLUSTER_TAG=

cluster_namespace() { echo "deepnet-mn-$$-${CLUSTER_TAG}-n$1"; }
cluster_veth() { echo "${CLUSTER_TAG}v$1"; }

cluster_up() {
  local nodes=$1 slots=$2 k ns
  : "${CLUSTER_DIR:?set CLUSTER_DIR to a work directory}"
  if [[ $(id -u) -ne 0 ]]; then echo "SKIP: network namespaces need root"; return 77; fi
  # + b (bridge), v<K> (veths), -n<K> (namespaces); interface names have at most 15 characters
  CLUSTER_TAG=dn$(( $$ % 100000 ))g$(( CLUSTER_COUNT++ % 100 ))
  for tool in ip unshare nsenter; do
    command -v "$tool" > /dev/null || { echo "SKIP: $tool is not installed"; return 77; }
  done
  cluster_sweep_stale
  if ! ip link add "${CLUSTER_TAG}b" type bridge 2> "$CLUSTER_DIR/ip.err"; then
    echo "SKIP: cannot create a bridge: $(cat "$CLUSTER_DIR/ip.err")"
    return 77
  fi
  CLUSTER_NODES=$nodes
  ip link set "${CLUSTER_TAG}b" up || return 1
  : > "$CLUSTER_DIR/hosts"
  : > "$CLUSTER_DIR/hostfile"
  for (( k = 0; k < nodes; ++k )); do
    ns=$(cluster_namespace "$k")
    if ! ip netns add "$ns" 2> "$CLUSTER_DIR/ip.err"; then
      echo "SKIP: cannot create a network namespace: $(cat "$CLUSTER_DIR/ip.err")"
      return 77
    fi
    ip link add "$(cluster_veth "$k")" type veth peer name eth0 netns "$ns" &&
      ip link set "$(cluster_veth "$k")" master "${CLUSTER_TAG}b" up &&
      ip -n "$ns" addr add "198.18.0.$(( k + 1 ))/24" dev eth0 &&
      ip -n "$ns" link set eth0 up &&
      ip -n "$ns" link set lo up || return 1
    # A cut node's connections with data in flight give up after ~3 s of retransmissions, not
    # Linux's ~15 minutes (what a cluster sets in sysctl.conf); keepalive covers idle ones.
    nsenter --net="/run/netns/$ns" sysctl -qw net.ipv4.tcp_retries2=3 || return 1
    # Retransmissions start at 50 ms rather than 200 ms, so that limit is reached in about 3 s.
    ip -n "$ns" route replace 198.18.0.0/24 dev eth0 src "198.18.0.$(( k + 1 ))" rto_min 50ms ||
      return 1
    echo "198.18.0.$(( k + 1 )) $ns node$k" >> "$CLUSTER_DIR/hosts"
    echo "198.18.0.$(( k + 1 )) slots=$slots" >> "$CLUSTER_DIR/hostfile"
  done
  if ! cluster_exec 0 true 2> "$CLUSTER_DIR/ip.err"; then
    echo "SKIP: cannot enter a namespace with its own hostname: $(cat "$CLUSTER_DIR/ip.err")"
    return 77
  fi
  export NETNS_CLUSTER_HOSTS=$CLUSTER_DIR/hosts
}

cluster_sweep_stale() {
  local ns owner tag pids
  for ns in $(ip netns list 2> /dev/null | awk '{ print $1 }' |
                grep -E '^deepnet-mn-[0-9]+-dn[0-9]+g[0-9]+-n[0-9]+$'); do
    owner=${ns#deepnet-mn-}
    owner=${owner%%-*}
    kill -0 "$owner" 2> /dev/null && continue  # its run is still going
    tag=${ns#deepnet-mn-"$owner"-}
    tag=${tag%-n*}
    pids=$(ip netns pids "$ns" 2> /dev/null)
    # shellcheck disable=SC2086  # a list of pids
    [[ -n $pids ]] && kill -KILL $pids 2> /dev/null
    ip link del "${tag}v${ns##*-n}" 2> /dev/null
    ip netns del "$ns" 2> /dev/null
    ip link del "${tag}b" 2> /dev/null
  done
  return 0
}

# nsenter rather than `ip netns exec`, which also remounts /sys and so hides /sys/fs/cgroup
# (slurmd needs it). A process started here, and all it starts, stays in the node.
netns_enter() {
  local namespace=$1 name=$2
  shift 2
  # shellcheck disable=SC2016  # expanded by that sh
  exec nsenter --net="/run/netns/$namespace" unshare --uts \
    sh -c 'hostname "$1" && shift && exec "$@"' netns_enter "$name" "$@"
}

cluster_exec() {
  local k=$1
  shift
  (netns_enter "$(cluster_namespace "$k")" "node$k" "$@")
}

cluster_cut_link() { ip link set "$(cluster_veth "$1")" down; }

cluster_pids() {
  local k
  if (( $# > 0 )); then
    ip netns pids "$(cluster_namespace "$1")" 2> /dev/null
    return 0
  fi
  for (( k = 0; k < CLUSTER_NODES; ++k )); do cluster_pids "$k"; done
}

cluster_kill_node() {
  local pids
  pids=$(cluster_pids "$1")
  # shellcheck disable=SC2086  # a list of pids
  [[ -n $pids ]] && kill -KILL $pids 2> /dev/null
  return 0
}

cluster_down() {
  local k try
  for (( k = 0; k < CLUSTER_NODES; ++k )); do
    for (( try = 0; try < 50; ++try )); do  # a dying process may still fork for a moment
      [[ -z $(cluster_pids "$k") ]] && break
      cluster_kill_node "$k"
      sleep 0.1
    done
    # The veth pair goes with its root end; the namespace itself lingers (unnamed) while sockets
    # of the cut connections in it time out, so its end would otherwise keep the pair alive.
    ip link del "$(cluster_veth "$k")" 2> /dev/null
    ip netns del "$(cluster_namespace "$k")" 2> /dev/null
  done
  [[ -n $CLUSTER_TAG ]] && ip link del "${CLUSTER_TAG}b" 2> /dev/null
  CLUSTER_NODES=0
  return 0
}
