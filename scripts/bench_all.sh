#!/usr/bin/env bash
# Runs every benchmark with the settings quoted in the issue notes and prints one line per case.
#   scripts/bench_all.sh [gemm|engine|attention|ep|moe ...]   (default: all)
# Expert benchmarks launch mpirun at several rank counts; sizes are capped for a 24 GiB machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
bin=./build/modelone
what=("$@")
[ ${#what[@]} -eq 0 ] && what=(gemm engine attention ep moe)
for w in "${what[@]}"; do
  case "$w" in
    gemm) $bin bench gemm ;;
    engine)
      $bin bench engine --model tiny --contexts 1024,2048,4096,8192,16384,32768
      # V4-Flash layer shapes (sliding, sliding, CSA, HCA) with 16 of the 256 experts.
      $bin bench engine --model v4-flash --set num_hidden_layers=4 --set n_routed_experts=16 \
        --contexts 1024,4096 --decode-steps 4 ;;
    attention) $bin bench attention ;;
    ep)
      for t in shm mpi; do
        mpirun -n 2 $bin bench ep --ep-transport $t --tokens 1,8,32,128,4096,16384 --iters 5
        mpirun -n 4 $bin bench ep --ep-transport $t --tokens 1,8,32,128,4096,8192 --iters 5
        mpirun -n 8 $bin bench ep --ep-transport $t --tokens 1,8,32,128,2048 --iters 5
        mpirun -n 4 $bin bench ep --ep-transport $t --tokens 128,4096 --iters 5 --dispatch bf16 --combine bf16
        mpirun -n 4 $bin bench ep --ep-transport $t --tokens 128,4096 --iters 5 --dispatch fp8 --combine bf16
      done ;;
    moe)
      # One rank gets both cores (mpirun would bind it to one); more ranks get one core each.
      $bin bench moe --set n_routed_experts=64 --global-tokens 512 --iters 3
      for p in 2 4 8; do
        mpirun -n $p $bin bench moe --set n_routed_experts=64 --global-tokens 512 --iters 3
      done
      for p in 2 4 8; do
        mpirun -n $p $bin bench moe --set n_routed_experts=64 --global-tokens 512 --iters 3 --ep-transport mpi
        mpirun -n $p $bin bench moe --set n_routed_experts=64 --global-tokens 512 --iters 3 --ep-transport mpi --overlap
      done
      $bin bench moe --set n_routed_experts=64 --global-tokens 16 --iters 5
      for p in 2 4 8; do
        mpirun -n $p $bin bench moe --set n_routed_experts=64 --global-tokens 16 --iters 5
      done ;;
    *) echo "bench_all.sh: unknown benchmark '$w' (gemm, engine, attention, ep, moe)" >&2; exit 2 ;;
  esac
done
