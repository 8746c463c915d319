#!/bin/bash
# Open MPI's remote launch agent for the namespace test bed (netns_cluster.sh), in place of ssh:
# `--mca plm_rsh_agent netns_rsh_agent.sh` makes mpirun run
#   netns_rsh_agent.sh [ssh options] HOST orted ARGS...
# and this runs `orted ARGS...` inside the network namespace that holds HOST's address, with that
# node's hostname (own UTS namespace), through `sh -c` as sshd would (Open MPI quotes the
# arguments for a remote shell). The nodes are read from $NETNS_CLUSTER_HOSTS, lines of
# "ADDRESS NAMESPACE HOSTNAME" written by netns_cluster.sh.
set -uo pipefail

while [[ ${1:-} == -* ]]; do shift; done  # ssh options, if any
host=${1:?usage: netns_rsh_agent.sh HOST COMMAND...}
shift
read -r _ namespace name < <(awk -v h="$host" '$1 == h || $3 == h { print; exit }' \
                                 "${NETNS_CLUSTER_HOSTS:?not set: the hosts file of netns_cluster.sh}")
if [[ -z ${namespace:-} ]]; then
  echo "netns_rsh_agent.sh: $host is not a node of the test bed ($NETNS_CLUSTER_HOSTS)" >&2
  exit 255  # what ssh returns when it cannot reach the host
fi
# shellcheck source=tests/launch/multinode/netns_cluster.sh
source "$(dirname "$0")/netns_cluster.sh"
netns_enter "$namespace" "$name" sh -c "exec $*"
