#!/usr/bin/env bash
# Runs a modelone command as an N-node job would run it, on this one machine: N x R ranks, each
# "node" getting an equal share of the cores, each rank bound to its share with that many
# threads, and the ranks talking over TCP (loopback) instead of shared memory, as ranks on
# different nodes talk over the network. A way to try a cluster layout (ranks, threads, the
# cross-node expert exchange) before queueing for one.
#
#   scripts/cluster/emulate_nodes.sh NODES RANKS_PER_NODE [--] MODELONE_ARGS...
#   e.g. scripts/cluster/emulate_nodes.sh 2 1 run --model tiny --random-prompt 64 --generate 8
#
# Environment:
#   MODELONE=path        the binary (default build/modelone)
#   LINK=tcp|sm          tcp (default): Open MPI's TCP transport on loopback for every message;
#                        sm: its shared memory (a fatter "network" than any real one)
#   DRY_RUN=1            print the mpirun command only
#
# What it cannot emulate: every emulated node shares this machine's memory and memory bandwidth
# (a real node has its own), and modelone's --ep-transport auto sees one node and would take the
# node-shared-memory exchange, so for `run`, `bench ep` and `bench moe` the script adds
# --ep-transport mpi (the path ranks on different nodes take) unless the command names one.
set -euo pipefail
cd "$(dirname "$0")/../.."

usage() { sed -n '8,9p' "$0" | sed 's/^# \{0,3\}//' >&2; exit 2; }
[ $# -ge 3 ] || usage
nodes=$1 rpn=$2
shift 2
[ "${1:-}" = "--" ] && shift
[[ "$nodes" =~ ^[1-9][0-9]*$ && "$rpn" =~ ^[1-9][0-9]*$ ]] || usage
bin=${MODELONE:-build/modelone}
link=${LINK:-tcp}
[ -x "$bin" ] || { echo "emulate_nodes: no binary at $bin (scripts/setup.sh builds it)" >&2; exit 2; }

ranks=$((nodes * rpn))
cores=$(nproc)
# Each emulated node gets cores / N of this machine; each rank cores / (N x R). With more ranks
# than cores a rank gets one thread and no binding (bound ranks would pile onto the same cores).
per_rank=$((cores / ranks))
if [ "$per_rank" -ge 1 ]; then
  # slot:PE=k fills ranks in order, k cores each: ranks 0..R-1 are node 0, R..2R-1 node 1, as
  # ppr:R:node places them on a real cluster.
  mapping=(--map-by "slot:PE=$per_rank" --bind-to core)
  threads=$per_rank
else
  mapping=(--map-by slot --bind-to none --oversubscribe)
  threads=1
fi

mca=()
if [ "$link" = tcp ]; then
  # ob1 over the tcp BTL (loopback is excluded by default: include it); no shared-memory BTL,
  # so every message pays a socket's copies and latency as between nodes.
  mca=(--mca pml ob1 --mca btl "self,tcp" --mca btl_tcp_if_include lo)
elif [ "$link" != sm ]; then
  echo "emulate_nodes: LINK must be tcp or sm, not '$link'" >&2; exit 2
fi

args=("$@")
if [ "$nodes" -gt 1 ]; then
  wants_transport=0
  case "${args[0]:-} ${args[1]:-}" in
    "run "*|"bench ep"|"bench moe") wants_transport=1 ;;
  esac
  for a in "${args[@]}"; do [[ "$a" == --ep-transport* ]] && wants_transport=0; done
  [ "$wants_transport" = 1 ] && args+=(--ep-transport mpi)
fi

echo "emulate_nodes: $nodes node(s) x $rpn rank(s) = $ranks ranks on one machine of $cores cores;" \
     "$threads thread(s) per rank, $( [ "$per_rank" -ge 1 ] && echo "bound to $per_rank core(s) each" || echo "unbound (more ranks than cores)" );" \
     "ranks talk over $( [ "$link" = tcp ] && echo "TCP loopback" || echo "shared memory" )" >&2
cmd=(mpirun -np "$ranks" "${mapping[@]}" "${mca[@]}"
     -x OMP_NUM_THREADS="$threads" -x OPENBLAS_NUM_THREADS=1 "$bin" "${args[@]}")
echo "emulate_nodes: ${cmd[*]}" >&2
[ "${DRY_RUN:-0}" = 1 ] && exit 0
# Root in a container needs Open MPI's consent; harmless elsewhere.
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
exec "${cmd[@]}"
