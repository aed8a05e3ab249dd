#!/usr/bin/env bash
# Launches modelone over the nodes of an Open MPI hostfile: R ranks per node (or per NUMA
# domain), each bound to its own C cores and running C threads, the environment exported to
# every node. The binary and the model must be at the same path on every node (a shared file
# system, or copied there).
#
#   scripts/cluster/mpirun_hostfile.sh HOSTFILE [--] MODELONE_ARGS...
#   e.g. RANKS_PER=1 PER=numa scripts/cluster/mpirun_hostfile.sh hosts \
#          run --model /shared/v4-flash --ids-file prompt.txt --generate 64
#
# Environment:
#   PER=node|numa        place RANKS_PER ranks on each node (default) or on each NUMA domain;
#                        per NUMA domain keeps a rank's threads next to its memory
#   RANKS_PER=R          ranks per node / per NUMA domain (default 1)
#   CORES_PER_RANK=C     cores (= threads) per rank (default: this node's cores over the ranks
#                        it would hold, so run it from a node like the others)
#   NODES=N              nodes to use (default: the hostfile's non-comment lines)
#   NUMA_PER_NODE=D      NUMA domains per node with PER=numa (default: this node's)
#   MODELONE=path        the binary (default: build/modelone under this checkout, made absolute)
#   MPIRUN_ARGS="..."    more mpirun options (a site's --mca btl / pml choices, --prefix ...)
#   DRY_RUN=1            print the mpirun command only
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)

[ $# -ge 2 ] || { sed -n '7,9p' "$0" | sed 's/^# \{0,3\}//' >&2; exit 2; }
hostfile=$1
shift
[ "${1:-}" = "--" ] && shift
[ -r "$hostfile" ] || { echo "mpirun_hostfile: cannot read $hostfile" >&2; exit 2; }

per=${PER:-node}
rper=${RANKS_PER:-1}
nodes=${NODES:-$(grep -cv '^[[:space:]]*\(#\|$\)' "$hostfile")}
bin=${MODELONE:-$here/build/modelone}
case "$per" in
  node) domains=1 ;;
  numa) domains=${NUMA_PER_NODE:-$(find /sys/devices/system/node -maxdepth 1 -name "node[0-9]*" 2>/dev/null | wc -l)}
        [ "$domains" -ge 1 ] || domains=1 ;;
  *) echo "mpirun_hostfile: PER must be node or numa, not '$per'" >&2; exit 2 ;;
esac
per_node=$((rper * domains))
ranks=$((nodes * per_node))
cores=${CORES_PER_RANK:-$(( $(nproc) / per_node ))}
[ "$cores" -ge 1 ] || cores=1

# ppr:R:node (or :numa) starts R ranks per node (per NUMA domain) and PE=C gives each C cores,
# bound with --bind-to core, so the OpenMP threads of one rank never share a core with another
# rank's. -x sends the variables to the remote nodes, where mpirun does not inherit the shell.
cmd=(mpirun --hostfile "$hostfile" -np "$ranks" --map-by "ppr:$rper:$per:PE=$cores" --bind-to core
     --report-bindings -x OMP_NUM_THREADS="$cores" -x OPENBLAS_NUM_THREADS=1 -x PATH)
# Optional settings travel only when set here, so a node's own defaults are not overridden.
for v in LD_LIBRARY_PATH MODELONE_CPU_FEATURES OMP_PROC_BIND OMP_PLACES; do
  [ -n "${!v:-}" ] && cmd+=(-x "$v")
done
# shellcheck disable=SC2206  # site options are meant to split into words
[ -n "${MPIRUN_ARGS:-}" ] && cmd+=(${MPIRUN_ARGS})
cmd+=("$bin" "$@")

echo "mpirun_hostfile: $nodes node(s) x $per_node rank(s) ($rper per $per) = $ranks ranks," \
     "$cores core(s) and thread(s) per rank" >&2
echo "mpirun_hostfile: ${cmd[*]}" >&2
[ "${DRY_RUN:-0}" = 1 ] && exit 0
exec "${cmd[@]}"
